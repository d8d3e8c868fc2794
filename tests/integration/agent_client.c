/*
 * agent_client.c: a test client for vmshim-agent, driven by tests/integration/agent_*.sh.
 *
 * Speaks the agent protocol (docs/PROTOCOL.md) through common/: transport_connect for the
 * hybrid-vsock dial, rpc_client (with its reader thread) for control calls and the event
 * subscription, and plain blocking threads for the stream connections. Each subcommand is one
 * scenario that checks what it observes and exits 0 (pass), 1 (fail, with a line saying why)
 * or 2 (usage):
 *
 *   handshake SOCK            the hybrid handshake table
 *   ping SOCK                 one Ping
 *   run SOCK [opts] -- ARGS   run one process: stdin from a file, stdout/stderr to files, exit
 *                             status checked, exit event checked to come after all output
 *   many SOCK N               N concurrent processes on one control connection
 *   bigframe SOCK             a stdin frame of 10 MiB + 1 fails the stream; the agent lives
 *   oci SOCK BUNDLE           runc bundle: create, start, exec, pids, stats, kill, delete
 *   ociterm SOCK BUNDLE       runc bundle with terminals: init and exec see the ResizePty size
 *                             and their stdin, CloseStdin ends the init's terminal input
 *   overlap SOCK 0|1          MountDisk/CreateContainer spans; 1: the agent runs with
 *                             VMSHIM_TEST_BRINGUP_OVERLAP=1 and must drop the connection
 *
 * Regression scenarios (agent_regress.sh):
 *
 *   slowread SOCK N S         a stdout reader that waits S s: no byte lost, exit after EOF
 *   slowkill SOCK S           the same, the process killed while its full pipe is paused
 *   dropout SOCK              the shim's stdout socket closes inside a big (spliced) frame:
 *                             the process is drained to its end and its exit is published
 *   pidreuse SOCK FILE        an orphan's exit never lands on a later process with its pid
 *                             (FILE: scratch file; exits 77 when the pid cannot be steered)
 *   lifecycle SOCK DIR        fake runtime in DIR: Start/Exec/Delete refused while creating,
 *                             a second DeleteProcess refused while the first runs, and a
 *                             runtime error message taken from that command's own log
 *   closingsub SOCK           an event published while the only subscriber's connection is
 *                             closing is kept for the next subscriber (needs
 *                             VMSHIM_TEST_BRINGUP_OVERLAP=1 to close connections)
 *   ptyeof SOCK               a terminal's stdin ends (CloseStdin, stdin EOF) reach `cat`
 *   usercheck SOCK U:G[:GS] CODE  CreateContainer with that process.user answers CODE
 *   call SOCK METHOD JSON     one control call; prints "OK PAYLOAD" or "CODE message"
 *                             (exit 0 either way)
 *
 * Process-global state is only the option values and the exit-event table (guarded by
 * ev_lock). Every descriptor is closed by the function that opened it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "msg.h"
#include "protocol.h"
#include "rpc.h"
#include "transport.h"
#include "util.h"

#define CALL_MS 30000

static const char *sock_path;

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "agent_client: FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* Connect to the agent's port through the hybrid handshake. */
static int
cl_dial(uint32_t port)
{
	struct endpoint ep;
	struct status st;
	char buf[300];
	int fd;

	snprintf(buf, sizeof buf, "uds:%s:%u", sock_path, port);
	if (endpoint_parse(buf, &ep, &st) < 0)
		die("%s", st.msg);
	fd = transport_connect(&ep, 5000, &st);
	if (fd < 0)
		die("connect port %u: %s", port, st.msg);
	return fd;
}

/* ---- events ---- */

struct exit_ev {
	char id[160];
	int status;
	int pid;
};

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static struct exit_ev *ev_exits;
static size_t ev_n, ev_cap;
static bool ev_ended;

static void
cl_on_event(void *arg, const uint8_t *buf, size_t len)
{
	struct msg_event ev;
	struct status st;
	const char *cid = NULL, *id = NULL;
	int64_t status = -1, pid = 0;

	pthread_mutex_lock(&ev_lock);
	if (buf == NULL) {
		ev_ended = true;
		pthread_cond_broadcast(&ev_cond);
		pthread_mutex_unlock(&ev_lock);
		return;
	}
	pthread_mutex_unlock(&ev_lock);
	if (msg_event_decode(buf, len, &ev, &st) < 0)
		die("bad event: %s", st.msg);
	if (strcmp(ev.topic, "/tasks/exit") == 0) {
		if (msg_get_string(ev.event, "event", "container_id", true, &cid, &st) < 0 ||
		    msg_get_string(ev.event, "event", "id", true, &id, &st) < 0 ||
		    msg_get_i64(ev.event, "event", "exit_status", true, &status, &st) < 0 ||
		    msg_get_i64(ev.event, "event", "pid", true, &pid, &st) < 0)
			die("bad exit event: %s", st.msg);
		pthread_mutex_lock(&ev_lock);
		if (ev_n == ev_cap) {
			ev_cap = ev_cap ? ev_cap * 2 : 64;
			ev_exits = xrealloc(ev_exits, ev_cap * sizeof *ev_exits);
		}
		snprintf(ev_exits[ev_n].id, sizeof ev_exits[ev_n].id, "%s/%s", cid, id);
		ev_exits[ev_n].status = (int)status;
		ev_exits[ev_n].pid = (int)pid;
		ev_n++;
		pthread_cond_broadcast(&ev_cond);
		pthread_mutex_unlock(&ev_lock);
	}
	msg_event_clear(&ev);
}

/* Wait for the exit event of cid/id; returns its status. */
static int
cl_wait_exit(const char *cid, const char *id, int timeout_s)
{
	struct timespec ts;
	char key[160];
	size_t i;
	int r;

	snprintf(key, sizeof key, "%s/%s", cid, id);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_s;
	pthread_mutex_lock(&ev_lock);
	for (;;) {
		for (i = 0; i < ev_n; i++) {
			if (strcmp(ev_exits[i].id, key) == 0) {
				r = ev_exits[i].status;
				pthread_mutex_unlock(&ev_lock);
				return r;
			}
		}
		if (ev_ended)
			die("event stream ended while waiting for %s", key);
		if (pthread_cond_timedwait(&ev_cond, &ev_lock, &ts) == ETIMEDOUT)
			die("no exit event for %s within %d s", key, timeout_s);
	}
}

static bool
cl_exit_seen(const char *cid, const char *id)
{
	char key[160];
	bool seen = false;
	size_t i;

	snprintf(key, sizeof key, "%s/%s", cid, id);
	pthread_mutex_lock(&ev_lock);
	for (i = 0; i < ev_n; i++)
		seen = seen || strcmp(ev_exits[i].id, key) == 0;
	pthread_mutex_unlock(&ev_lock);
	return seen;
}

/* ---- control ---- */

static struct rpc_client *
cl_control(bool subscribe)
{
	struct rpc_client *c = rpc_client_new(cl_dial(1024), 16 * 1024 * 1024);
	struct status st;

	if (rpc_client_start_reader(c, &st) < 0)
		die("reader: %s", st.msg);
	if (subscribe && rpc_client_subscribe(c, PROTOCOL_AGENT_SERVICE, "SubscribeEvents", NULL,
			     CALL_MS, cl_on_event, NULL, &st) < 0)
		die("SubscribeEvents: %s", st.msg);
	return c;
}

/* Call and expect OK; returns the response payload (caller decrefs). payload is stolen. */
static json_t *
cl_call(struct rpc_client *c, const char *method, json_t *payload)
{
	json_t *resp = NULL;
	struct status st;

	if (rpc_client_call(c, PROTOCOL_AGENT_SERVICE, method, payload, CALL_MS, &resp, &st) < 0)
		die("%s: %s: %s", method, status_code_name(st.code), st.msg);
	json_decref(payload);
	return resp;
}

/* Call and return the status code (message in *st). payload is stolen. */
static int
cl_call_code(struct rpc_client *c, const char *method, json_t *payload, struct status *st)
{
	json_t *resp = NULL;
	int r;

	r = rpc_client_call(c, PROTOCOL_AGENT_SERVICE, method, payload, CALL_MS, &resp, st);
	json_decref(payload);
	json_decref(resp);
	return r < 0 ? st->code : 0;
}

/* ---- streams ---- */

static int
cl_stream(const char *id, const char *exec_id, const char *name)
{
	int fd = cl_dial(1025);
	json_t *h = json_pack("{s:s, s:s, s:s}", "id", id, "exec_id", exec_id, "stream", name);
	char *s = json_dumps(h, JSON_COMPACT);

	if (stream_write_frames(fd, s, strlen(s)) < 0)
		die("stream hello: %s", strerror(errno));
	free(s);
	json_decref(h);
	return fd;
}

struct out_job {
	int sock;
	int out_fd;
	const char *cid;
	const char *id;
	bool check_order;
	unsigned long long bytes;
	bool eof;
};

/* Read one whole chunk from a socket, failing the order check if the exit came first. */
static ssize_t
cl_recv(struct out_job *j, void *buf, size_t len)
{
	struct pollfd pfd = {j->sock, POLLIN, 0};
	bool exited;
	ssize_t n;

	for (;;) {
		n = recv(j->sock, buf, len, MSG_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			return n;
		if (j->check_order) {
			/*
			 * The exit event is published only after every byte and the EOF frame were
			 * written to this socket: if it has been seen, the data must be here now.
			 */
			exited = cl_exit_seen(j->cid, j->id);
			n = recv(j->sock, buf, len, MSG_DONTWAIT);
			if (n >= 0 || (errno != EAGAIN && errno != EINTR))
				return n;
			if (exited)
				die("order: exit event of %s/%s arrived before its output was "
				    "complete "
				    "(%llu bytes so far)",
				    j->cid, j->id, j->bytes);
		}
		poll(&pfd, 1, 1000);
	}
}

static void
cl_recv_full(struct out_job *j, void *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		n = cl_recv(j, (char *)buf + off, len - off);
		if (n <= 0)
			die("stream of %s/%s: connection ended without EOF (%llu bytes)", j->cid,
			    j->id, j->bytes);
		off += (size_t)n;
	}
}

/* Output stream: send our EOF at once, then copy frames to out_fd until the agent's EOF. */
static void *
cl_out_thread(void *arg)
{
	struct out_job *j = arg;
	static const uint8_t zero[4];
	uint8_t hdr[4], *buf = xmalloc(STREAM_WRITE_MAX);
	uint32_t len, got;

	if (write_all(j->sock, zero, 4) < 0)
		die("send EOF: %s", strerror(errno));
	for (;;) {
		cl_recv_full(j, hdr, 4);
		len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
		      hdr[3];
		if (len == 0)
			break;
		if (len > STREAM_WRITE_MAX)
			die("frame of %u bytes: agents write at most 1 MiB", len);
		for (got = 0; got < len;) {
			size_t n = len - got;
			cl_recv_full(j, buf, n);
			if (j->out_fd >= 0 && write_all(j->out_fd, buf, n) < 0)
				die("write output: %s", strerror(errno));
			got += (uint32_t)n;
		}
		j->bytes += len;
	}
	j->eof = true;
	free(buf);
	return NULL;
}

struct in_job {
	int sock;
	int in_fd;
};

/* Stdin stream: send the file as frames, then EOF, then wait for the agent's EOF. */
static void *
cl_in_thread(void *arg)
{
	struct in_job *j = arg;
	uint8_t *buf = xmalloc(STREAM_WRITE_MAX), hdr[4];
	ssize_t n;

	while ((n = read(j->in_fd, buf, STREAM_WRITE_MAX)) > 0) {
		if (stream_write_frames(j->sock, buf, (size_t)n) < 0)
			die("stdin stream: %s", strerror(errno));
	}
	if (stream_write_frames(j->sock, NULL, 0) < 0)
		die("stdin EOF: %s", strerror(errno));
	if (read_full(j->sock, hdr, 4) < 0 || memcmp(hdr, "\0\0\0\0", 4) != 0)
		die("stdin stream: no EOF frame from the agent");
	free(buf);
	return NULL;
}

static json_t *
cl_process(char **args, int nargs)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < nargs; i++)
		json_array_append_new(a, json_string(args[i]));
	return json_pack("{s:o, s:[s], s:s}", "args", a, "env",
	    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "cwd", "/");
}

/*
 * CreateContainer id running args with one stdio stream (stdin, stdout or stderr) declared,
 * connect that stream, StartProcess. Returns the stream's socket; *pid (if not NULL) the pid.
 */
static int
cl_start_streamed(
    struct rpc_client *c, const char *id, char **args, int nargs, const char *stream, int64_t *pid)
{
	struct status st;
	json_t *resp;
	int sock;

	json_decref(cl_call(c, "CreateContainer",
	    json_pack("{s:s, s:{s:o}, s:b}", "id", id, "spec", "process", cl_process(args, nargs),
		stream, 1)));
	sock = cl_stream(id, "", stream);
	resp = cl_call(c, "StartProcess", json_pack("{s:s}", "id", id));
	if (pid != NULL && msg_get_i64(resp, "response", "pid", true, pid, &st) < 0)
		die("StartProcess: %s", st.msg);
	json_decref(resp);
	return sock;
}

/* An OCI user object from "UID:GID[:G1,G2...]". */
static json_t *
cl_user(const char *spec)
{
	unsigned uid = 0, gid = 0;
	json_t *groups = json_array();
	const char *g;
	char *end;

	if (sscanf(spec, "%u:%u", &uid, &gid) != 2)
		die("--user %s: expected UID:GID[:G1,G2...]", spec);
	g = strchr(strchr(spec, ':') + 1, ':');
	while (g != NULL && g[1] != '\0') {
		json_array_append_new(groups, json_integer((json_int_t)strtoul(g + 1, &end, 10)));
		g = *end == ',' ? end : NULL;
	}
	return json_pack(
	    "{s:i, s:i, s:o}", "uid", (int)uid, "gid", (int)gid, "additionalGids", groups);
}

/* ---- run ---- */

struct run_opts {
	const char *id;
	const char *user;	/* "UID:GID[:G1,G2...]" or NULL */
	const char *stdin_file; /* NULL: no stdin stream */
	const char *stdout_file;
	const char *stderr_file;
	int expect_status;
	bool check_order;
	bool expect_start_error;
};

/* Run one process and check its exit status. Returns 0 or dies. */
static int
cl_run(struct rpc_client *c, const struct run_opts *o, char **args, int nargs)
{
	struct out_job oj[2] = {{0}}, *jo = &oj[0], *je = &oj[1];
	struct in_job ij = {-1, -1};
	pthread_t to, te, ti;
	struct status st;
	json_t *resp, *process;
	int64_t status = -1;
	int code;

	process = cl_process(args, nargs);
	if (o->user != NULL)
		json_object_set_new(process, "user", cl_user(o->user));
	resp = cl_call(c, "CreateContainer",
	    json_pack("{s:s, s:s, s:{s:o}, s:b, s:b, s:b}", "id", o->id, "bundle", "", "spec",
		"process", process, "stdin", o->stdin_file != NULL, "stdout", 1, "stderr", 1));
	json_decref(resp);
	jo->sock = cl_stream(o->id, "", "stdout");
	je->sock = cl_stream(o->id, "", "stderr");
	jo->cid = je->cid = o->id;
	jo->id = je->id = o->id;
	jo->check_order = je->check_order = o->check_order;
	jo->out_fd = o->stdout_file != NULL
			 ? open(o->stdout_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
			 : -1;
	je->out_fd = o->stderr_file != NULL
			 ? open(o->stderr_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
			 : -1;
	pthread_create(&to, NULL, cl_out_thread, jo);
	pthread_create(&te, NULL, cl_out_thread, je);
	if (o->stdin_file != NULL) {
		ij.sock = cl_stream(o->id, "", "stdin");
		ij.in_fd = open(o->stdin_file, O_RDONLY | O_CLOEXEC);
		if (ij.in_fd < 0)
			die("open %s: %s", o->stdin_file, strerror(errno));
		pthread_create(&ti, NULL, cl_in_thread, &ij);
	}
	code = cl_call_code(
	    c, "StartProcess", json_pack("{s:s, s:s}", "id", o->id, "exec_id", ""), &st);
	if (o->expect_start_error) {
		if (code == 0)
			die("StartProcess succeeded; an error was expected");
		printf("start error: %s: %s\n", status_code_name(code), st.msg);
	} else if (code != 0) {
		die("StartProcess: %s: %s", status_code_name(code), st.msg);
	}
	status = cl_wait_exit(o->id, o->id, 600);
	pthread_join(to, NULL);
	pthread_join(te, NULL);
	if (o->stdin_file != NULL) {
		pthread_join(ti, NULL);
		close(ij.sock);
		close(ij.in_fd);
	}
	close(jo->sock);
	close(je->sock);
	if (jo->out_fd >= 0)
		close(jo->out_fd);
	if (je->out_fd >= 0)
		close(je->out_fd);
	resp = cl_call(c, "DeleteProcess", json_pack("{s:s, s:s}", "id", o->id, "exec_id", ""));
	if (msg_get_i64(resp, "response", "exit_status", true, &status, &st) < 0)
		die("%s", st.msg);
	json_decref(resp);
	if (status != o->expect_status)
		die("%s: exit status %lld, expected %d", o->id, (long long)status,
		    o->expect_status);
	return 0;
}

static int
cmd_run(int argc, char **argv)
{
	struct run_opts o = {.id = "c1"};
	struct rpc_client *c;
	int i;

	for (i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (i + 1 >= argc)
			die("run: %s needs a value", argv[i]);
		if (strcmp(argv[i], "--id") == 0)
			o.id = argv[++i];
		else if (strcmp(argv[i], "--stdin") == 0)
			o.stdin_file = argv[++i];
		else if (strcmp(argv[i], "--stdout") == 0)
			o.stdout_file = argv[++i];
		else if (strcmp(argv[i], "--stderr") == 0)
			o.stderr_file = argv[++i];
		else if (strcmp(argv[i], "--user") == 0)
			o.user = argv[++i];
		else if (strcmp(argv[i], "--expect-status") == 0)
			o.expect_status = atoi(argv[++i]);
		else if (strcmp(argv[i], "--order") == 0 && strcmp(argv[++i], "1") == 0)
			o.check_order = true;
		else if (strcmp(argv[i], "--start-error") == 0 && strcmp(argv[++i], "1") == 0)
			o.expect_start_error = true;
	}
	if (i >= argc - 1)
		die("run: no command after --");
	c = cl_control(true);
	cl_run(c, &o, argv + i + 1, argc - i - 1);
	rpc_client_free(c);
	return 0;
}

/* ---- many ---- */

struct many_job {
	struct rpc_client *c;
	int n;
	char id[32];
	char out[64];
};

static void *
cl_many_thread(void *arg)
{
	struct many_job *m = arg;
	struct out_job oj[2] = {{0}};
	pthread_t t[2];
	char expect[64];
	char *args[3] = {"sh", "-c", NULL};
	char script[64];
	int fds[2], k;
	ssize_t n;

	snprintf(
	    script, sizeof script, "echo hello-%d; echo err-%d >&2; exit %d", m->n, m->n, m->n % 7);
	args[2] = script;
	json_decref(cl_call(m->c, "CreateContainer",
	    json_pack("{s:s, s:{s:o}, s:b, s:b}", "id", m->id, "spec", "process",
		cl_process(args, 3), "stdout", 1, "stderr", 1)));
	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe");
	for (k = 0; k < 2; k++) {
		oj[k].sock = cl_stream(m->id, "", k == 0 ? "stdout" : "stderr");
		oj[k].cid = oj[k].id = m->id;
		oj[k].out_fd = k == 0 ? fds[1] : -1;
		pthread_create(&t[k], NULL, cl_out_thread, &oj[k]);
	}
	json_decref(cl_call(m->c, "StartProcess", json_pack("{s:s}", "id", m->id)));
	if (cl_wait_exit(m->id, m->id, 120) != m->n % 7)
		die("%s: wrong exit status", m->id);
	for (k = 0; k < 2; k++) {
		pthread_join(t[k], NULL);
		close(oj[k].sock);
	}
	close(fds[1]);
	n = read(fds[0], m->out, sizeof m->out - 1);
	close(fds[0]);
	m->out[n > 0 ? n : 0] = '\0';
	snprintf(expect, sizeof expect, "hello-%d\n", m->n);
	if (strcmp(m->out, expect) != 0)
		die("%s: stdout \"%s\", expected \"%s\"", m->id, m->out, expect);
	if (oj[1].bytes != strlen(expect) - 2) /* "err-N\n" */
		die("%s: stderr has %llu bytes", m->id, oj[1].bytes);
	json_decref(cl_call(m->c, "DeleteProcess", json_pack("{s:s}", "id", m->id)));
	return NULL;
}

static int
cmd_many(int n)
{
	struct rpc_client *c = cl_control(true);
	struct many_job *jobs = xcalloc((size_t)n, sizeof *jobs);
	pthread_t *t = xcalloc((size_t)n, sizeof *t);
	int i;

	for (i = 0; i < n; i++) {
		jobs[i].c = c;
		jobs[i].n = i;
		snprintf(jobs[i].id, sizeof jobs[i].id, "many-%d", i);
		if (pthread_create(&t[i], NULL, cl_many_thread, &jobs[i]) != 0)
			die("pthread_create");
	}
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("many: %d processes ok\n", n);
	rpc_client_free(c);
	free(jobs);
	free(t);
	return 0;
}

/* ---- bigframe ---- */

static int
cmd_bigframe(void)
{
	struct rpc_client *c = cl_control(true);
	char *args[] = {"cat"};
	uint8_t buf[4096] = {0};
	struct pollfd pfd;
	json_t *resp;
	int in, r;
	ssize_t n;

	in = cl_start_streamed(c, "big", args, 1, "stdin", NULL);
	/* One write: the agent may close the stream as soon as it has read the length. */
	stream_len_pack(STREAM_FRAME_MAX + 1, buf);
	if (write_all(in, buf, sizeof buf) < 0 && errno != EPIPE && errno != ECONNRESET)
		die("write: %s", strerror(errno));
	/* The agent fails the stream: the connection closes without reading 10 MiB. */
	pfd.fd = in;
	pfd.events = POLLIN;
	r = poll(&pfd, 1, 5000);
	if (r != 1)
		die("agent did not close the stream after a 10 MiB + 1 frame");
	n = read(in, buf, sizeof buf);
	if (n > 0)
		die("agent sent %zd bytes instead of closing", n);
	close(in);
	/* The agent is healthy: Ping answers; stdin closed, so cat exits 0. */
	resp = cl_call(c, "Ping", NULL);
	json_decref(resp);
	if (cl_wait_exit("big", "big", 10) != 0)
		die("cat did not exit 0 after its stdin stream failed");
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "big")));
	printf("bigframe: stream failed, agent healthy\n");
	rpc_client_free(c);
	return 0;
}

/* ---- handshake ---- */

static int
hs_raw(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect %s: %s", sock_path, strerror(errno));
	return fd;
}

/* Read until EOF or a newline within timeout; returns what was read. */
static size_t
hs_read(int fd, char *buf, size_t len, int timeout_ms, bool *closed)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	int64_t deadline = time_mono_ms() + timeout_ms;
	size_t off = 0;
	ssize_t n;

	*closed = false;
	while (off < len - 1) {
		int left = (int)(deadline - time_mono_ms());
		if (left <= 0 || poll(&pfd, 1, left) != 1)
			break;
		n = read(fd, buf + off, 1);
		if (n <= 0) {
			*closed = true;
			break;
		}
		off++;
		if (buf[off - 1] == '\n')
			break;
	}
	buf[off] = '\0';
	return off;
}

static void
hs_expect_ok(const char *what, const char *line)
{
	int fd = hs_raw();
	char buf[64];
	bool closed;
	uint32_t port;

	write_all(fd, line, strlen(line));
	hs_read(fd, buf, sizeof buf, 3000, &closed);
	if (strncmp(buf, "OK ", 3) != 0 || buf[strlen(buf) - 1] != '\n')
		die("%s: expected OK, got \"%s\"", what, buf);
	buf[strlen(buf) - 1] = '\0';
	if (parse_u32(buf + 3, &port) < 0 || port < 1073741824u)
		die("%s: bad host port \"%s\"", what, buf + 3);
	printf("ok   %s: %s\n", what, buf);
	close(fd);
}

static void
hs_expect_closed(const char *what, const char *data, size_t len)
{
	int fd = hs_raw();
	char buf[64];
	bool closed;

	write_all(fd, data, len);
	hs_read(fd, buf, sizeof buf, 4000, &closed);
	if (buf[0] != '\0' || !closed)
		die("%s: expected a close without answer, got \"%s\" (closed %d)", what, buf,
		    closed);
	printf("ok   %s: closed without OK\n", what);
	close(fd);
}

static int
cmd_handshake(void)
{
	char line[64], buf[64];
	uint8_t *frame, hdr[FRAME_HEADER_SIZE], *payload;
	struct frame_header h;
	struct msg_response resp;
	struct rpc_client *c;
	struct status st;
	size_t flen, rlen;
	int64_t t0, t1;
	int fd, silent;
	bool closed;
	char *req;

	hs_expect_ok("good", "CONNECT 1024\n");
	hs_expect_ok("lowercase connect", "connect 1025\n");
	hs_expect_closed("unknown port", "CONNECT 9999\n", 13);
	hs_expect_closed("garbage", "GET / HTTP/1.0\n", 15);
	hs_expect_closed("no space", "CONNECT1024\n", 12);
	memset(line, 'A', 33);
	hs_expect_closed("33 bytes without newline", line, 33);
	snprintf(line, sizeof line, "CONNECT %031u\n", 1024u);
	hs_expect_closed("line over 32 bytes", line, strlen(line));

	/* Silence: this client says nothing; another is served meanwhile. */
	silent = hs_raw();
	t0 = time_mono_ms();
	c = cl_control(false);
	json_decref(cl_call(c, "Ping", NULL));
	t1 = time_mono_ms();
	if (t1 - t0 > 1000)
		die("silence: another client waited %lld ms", (long long)(t1 - t0));
	rpc_client_free(c);
	printf("ok   silence: another client served in %lld ms\n", (long long)(t1 - t0));
	hs_read(silent, buf, sizeof buf, 5000, &closed);
	t1 = time_mono_ms();
	if (!closed || buf[0] != '\0')
		die("silence: not closed after the deadline (%lld ms)", (long long)(t1 - t0));
	if (t1 - t0 < 1500 || t1 - t0 > 4000)
		die("silence: closed after %lld ms, expected about 2000", (long long)(t1 - t0));
	printf("ok   silence: closed after %lld ms\n", (long long)(t1 - t0));
	close(silent);

	/* A Ping frame in the same write as the CONNECT line reaches the service intact. */
	req = msg_request_encode(PROTOCOL_AGENT_SERVICE, "Ping", NULL, 0, &rlen);
	frame = frame_encode(1, FRAME_TYPE_REQUEST, 0, req, rlen, &flen);
	free(req);
	fd = hs_raw();
	memcpy(line, "CONNECT 1024\n", 13);
	{
		uint8_t *all = xmalloc(13 + flen);
		memcpy(all, line, 13);
		memcpy(all + 13, frame, flen);
		write_all(fd, all, 13 + flen);
		free(all);
	}
	free(frame);
	hs_read(fd, buf, sizeof buf, 3000, &closed);
	if (strncmp(buf, "OK ", 3) != 0)
		die("data after newline: expected OK, got \"%s\"", buf);
	if (read_full(fd, hdr, sizeof hdr) < 0)
		die("data after newline: no response frame");
	frame_header_unpack(hdr, &h);
	if (h.type != FRAME_TYPE_RESPONSE || h.stream_id != 1 || h.length > 65536)
		die("data after newline: unexpected frame type %u id %u", h.type, h.stream_id);
	payload = xmalloc(h.length);
	if (read_full(fd, payload, h.length) < 0 ||
	    msg_response_decode(payload, h.length, &resp, &st) < 0 || resp.code != 0)
		die("data after newline: bad Ping response");
	msg_response_clear(&resp);
	free(payload);
	close(fd);
	printf("ok   data after the newline: Ping in the same write answered\n");
	return 0;
}

/* ---- oci ---- */

static json_t *
oci_spec(const char *bundle, const char *script)
{
	char path[4096];
	json_error_t err;
	json_t *spec;

	snprintf(path, sizeof path, "%s/config.json", bundle);
	spec = json_load_file(path, 0, &err);
	if (spec == NULL)
		die("%s: %s", path, err.text);
	json_object_set_new(json_object_get(spec, "process"), "terminal", json_false());
	json_object_set_new(
	    json_object_get(spec, "process"), "args", json_pack("[s, s, s]", "sh", "-c", script));
	return spec;
}

static int
cmd_oci(const char *bundle)
{
	struct rpc_client *c = cl_control(true);
	struct out_job oj = {0}, ej = {0};
	pthread_t t;
	char *args[] = {"sh", "-c", "echo exec-out; exit 5"};
	int fds[2];
	char out[128];
	json_t *resp, *procs = NULL, *spec;
	struct status st;
	int64_t pid = 0;
	ssize_t n;

	spec = oci_spec(bundle, "echo init-out; exec sleep 60");
	resp = cl_call(c, "CreateContainer",
	    json_pack(
		"{s:s, s:s, s:o, s:b}", "id", "oci1", "bundle", bundle, "spec", spec, "stdout", 1));
	if (msg_get_i64(resp, "response", "pid", true, &pid, &st) < 0 || pid <= 0)
		die("CreateContainer: no pid");
	json_decref(resp);
	printf("ok   create: pid %lld\n", (long long)pid);
	if (cl_call_code(c, "ResizePty",
		json_pack("{s:s, s:i, s:i}", "id", "oci1", "width", 80, "height", 24),
		&st) != ST_FAILED_PRECONDITION)
		die("ResizePty without a terminal: not FAILED_PRECONDITION");
	printf("ok   ResizePty without a terminal: FAILED_PRECONDITION (%s)\n", st.msg);
	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe");
	oj.sock = cl_stream("oci1", "", "stdout");
	oj.cid = oj.id = "oci1";
	oj.out_fd = fds[1];
	pthread_create(&t, NULL, cl_out_thread, &oj);
	json_decref(cl_call(c, "StartProcess", json_pack("{s:s}", "id", "oci1")));
	n = read(fds[0], out, sizeof out - 1);
	out[n > 0 ? n : 0] = '\0';
	if (strcmp(out, "init-out\n") != 0)
		die("init output \"%s\"", out);
	printf("ok   start: init wrote its line\n");

	json_decref(cl_call(c, "ExecProcess",
	    json_pack("{s:s, s:s, s:o, s:b}", "id", "oci1", "exec_id", "e1", "process",
		cl_process(args, 3), "stdout", 1)));
	ej.sock = cl_stream("oci1", "e1", "stdout");
	ej.cid = "oci1";
	ej.id = "e1";
	ej.out_fd = -1;
	{
		pthread_t te;
		pthread_create(&te, NULL, cl_out_thread, &ej);
		json_decref(cl_call(
		    c, "StartProcess", json_pack("{s:s, s:s}", "id", "oci1", "exec_id", "e1")));
		if (cl_wait_exit("oci1", "e1", 30) != 5)
			die("exec: wrong exit status");
		pthread_join(te, NULL);
		if (ej.bytes != strlen("exec-out\n"))
			die("exec: %llu bytes of output", ej.bytes);
	}
	close(ej.sock);
	json_decref(
	    cl_call(c, "DeleteProcess", json_pack("{s:s, s:s}", "id", "oci1", "exec_id", "e1")));
	printf("ok   exec: output and exit status 5\n");

	resp = cl_call(c, "Pids", json_pack("{s:s}", "id", "oci1"));
	if (msg_get_array(resp, "response", "processes", true, &procs, &st) < 0 ||
	    json_array_size(procs) < 1)
		die("Pids: no process");
	printf("ok   pids: %zu process(es)\n", json_array_size(procs));
	json_decref(resp);
	resp = cl_call(c, "Stats", json_pack("{s:s}", "id", "oci1"));
	{
		char *s = json_dumps(resp, JSON_COMPACT);
		json_t *cpu = NULL;
		if (msg_get_object(resp, "response", "cpu", true, &cpu, &st) < 0)
			die("Stats: %s", st.msg);
		printf("ok   stats: %s\n", s);
		free(s);
	}
	json_decref(resp);

	json_decref(cl_call(c, "SignalProcess",
	    json_pack("{s:s, s:s, s:i}", "id", "oci1", "exec_id", "", "signal", SIGKILL)));
	if (cl_wait_exit("oci1", "oci1", 30) != 137)
		die("kill: exit status is not 137");
	pthread_join(t, NULL);
	close(oj.sock);
	close(fds[0]);
	close(fds[1]);
	printf("ok   kill: exit status 137\n");
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "oci1")));
	printf("ok   delete\n");
	rpc_client_free(c);
	return 0;
}

/* Read the pipe into buf (NUL-terminated) until it holds want; die after timeout_s. */
static void
oci_read_until(int fd, char *buf, size_t size, const char *want, int timeout_s)
{
	int64_t deadline = time_mono_ms() + timeout_s * 1000;
	size_t len = strlen(buf);
	struct pollfd pfd = {fd, POLLIN, 0};
	ssize_t n;

	while (strstr(buf, want) == NULL) {
		if (time_mono_ms() > deadline || len + 1 >= size)
			die("terminal output has no \"%s\": \"%s\"", want, buf);
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(fd, buf + len, size - 1 - len);
		if (n <= 0)
			die("terminal output ended without \"%s\": \"%s\"", want, buf);
		len += (size_t)n;
		buf[len] = '\0';
	}
}

/*
 * Terminals under runc: the init (sized by ResizePty after create) and an exec (sized, and
 * fed its line, before its start: both wait for the master runc sends) print `stty size` and
 * the line they read; CloseStdin then ends the init's `read` with VEOF.
 */
static int
cmd_ociterm(const char *bundle)
{
	struct rpc_client *c = cl_control(true);
	char *args[] = {"sh", "-c", "read x; stty size; echo got:$x"};
	struct out_job oj = {0}, ej = {0};
	char out[8192] = "", eout[8192] = "";
	int fds[2], efds[2], in, ein;
	pthread_t t, te;
	json_t *resp, *spec;
	struct status st;
	int64_t pid = 0;

	spec = oci_spec(bundle, "stty size; read x; echo got:$x; read y; echo end");
	json_object_set_new(json_object_get(spec, "process"), "terminal", json_true());
	resp = cl_call(c, "CreateContainer",
	    json_pack("{s:s, s:s, s:o, s:b, s:b, s:b}", "id", "ocit", "bundle", bundle, "spec",
		spec, "terminal", 1, "stdin", 1, "stdout", 1));
	if (msg_get_i64(resp, "response", "pid", true, &pid, &st) < 0 || pid <= 0)
		die("CreateContainer (terminal): no pid");
	json_decref(resp);
	if (pipe2(fds, O_CLOEXEC) < 0 || pipe2(efds, O_CLOEXEC) < 0)
		die("pipe");
	oj.sock = cl_stream("ocit", "", "stdout");
	oj.cid = oj.id = "ocit";
	oj.out_fd = fds[1];
	pthread_create(&t, NULL, cl_out_thread, &oj);
	in = cl_stream("ocit", "", "stdin");
	json_decref(cl_call(c, "ResizePty",
	    json_pack("{s:s, s:i, s:i}", "id", "ocit", "width", 100, "height", 40)));
	json_decref(cl_call(c, "StartProcess", json_pack("{s:s}", "id", "ocit")));
	oci_read_until(fds[0], out, sizeof out, "40 100", 10);
	if (stream_write_frames(in, "hello\n", 6) < 0)
		die("stdin: %s", strerror(errno));
	oci_read_until(fds[0], out, sizeof out, "got:hello", 10);
	printf("ok   terminal init: stty size 40 100, read \"hello\"\n");

	json_decref(cl_call(c, "ExecProcess",
	    json_pack("{s:s, s:s, s:o, s:b, s:b, s:b}", "id", "ocit", "exec_id", "t1", "process",
		cl_process(args, 3), "terminal", 1, "stdin", 1, "stdout", 1)));
	ej.sock = cl_stream("ocit", "t1", "stdout");
	ej.cid = "ocit";
	ej.id = "t1";
	ej.out_fd = efds[1];
	pthread_create(&te, NULL, cl_out_thread, &ej);
	ein = cl_stream("ocit", "t1", "stdin");
	json_decref(cl_call(c, "ResizePty",
	    json_pack(
		"{s:s, s:s, s:i, s:i}", "id", "ocit", "exec_id", "t1", "width", 90, "height", 30)));
	if (stream_write_frames(ein, "hi2\n", 4) < 0)
		die("exec stdin: %s", strerror(errno));
	json_decref(
	    cl_call(c, "StartProcess", json_pack("{s:s, s:s}", "id", "ocit", "exec_id", "t1")));
	if (cl_wait_exit("ocit", "t1", 30) != 0)
		die("terminal exec: exit status");
	pthread_join(te, NULL);
	oci_read_until(efds[0], eout, sizeof eout, "30 90", 5);
	oci_read_until(efds[0], eout, sizeof eout, "got:hi2", 5);
	if (stream_write_frames(ein, NULL, 0) < 0)
		die("exec stdin EOF: %s", strerror(errno));
	close(ein);
	close(ej.sock);
	json_decref(
	    cl_call(c, "DeleteProcess", json_pack("{s:s, s:s}", "id", "ocit", "exec_id", "t1")));
	printf(
	    "ok   terminal exec: sized and fed before its start: stty size 30 90, read \"hi2\"\n");

	json_decref(cl_call(c, "CloseStdin", json_pack("{s:s}", "id", "ocit")));
	if (cl_wait_exit("ocit", "ocit", 30) != 0)
		die("terminal init: exit status after CloseStdin");
	pthread_join(t, NULL);
	oci_read_until(fds[0], out, sizeof out, "end", 5);
	printf("ok   terminal init: CloseStdin ended its read, exit status 0\n");
	if (stream_write_frames(in, NULL, 0) < 0)
		die("stdin EOF: %s", strerror(errno));
	close(in);
	close(oj.sock);
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "ocit")));
	close(fds[0]);
	close(fds[1]);
	close(efds[0]);
	close(efds[1]);
	rpc_client_free(c);
	return 0;
}

/* ---- bring-up overlap switch ---- */

static int
hs_mount(struct rpc_client *c, const char *id, struct status *st)
{
	json_t *resp = NULL, *req;
	const char *msg = NULL;
	bool mounted = true;
	int r;

	req = json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "id", id, "serial", id, "target",
	    "/mnt/vmshim-test", "fstype", "ext4", "options", "ro");
	r = rpc_client_call(c, PROTOCOL_AGENT_SERVICE, "MountDisk", req, CALL_MS, &resp, st);
	json_decref(req);
	if (r < 0)
		return -1;
	if (msg_get_bool(resp, "response", "mounted", true, &mounted, st) < 0 ||
	    msg_get_string(resp, "response", "message", true, &msg, st) < 0)
		die("MountDisk: %s", st->msg);
	if (mounted || strcmp(msg, "mount skipped: local VM") != 0)
		die("MountDisk in the local VM: mounted %d, message \"%s\"", mounted, msg);
	json_decref(resp);
	return 0;
}

static void
hs_create(struct rpc_client *c, const char *id)
{
	char *args[] = {"true"};

	json_decref(cl_call(c, "CreateContainer",
	    json_pack("{s:s, s:{s:o}}", "id", id, "spec", "process", cl_process(args, 1))));
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", id)));
}

/* Serial bring-ups never trip the switch; overlapping ones drop the connection iff it is on. */
static int
cmd_overlap(bool expect_drop)
{
	struct rpc_client *c = cl_control(false);
	struct status st;
	int r;

	if (hs_mount(c, "ov-a", &st) < 0)
		die("MountDisk ov-a: %s", st.msg);
	hs_create(c, "ov-a");
	if (hs_mount(c, "ov-b", &st) < 0)
		die("MountDisk ov-b: %s", st.msg);
	hs_create(c, "ov-b");
	json_decref(cl_call(c, "Ping", NULL));
	printf("ok   serial bring-ups: connection kept\n");
	if (hs_mount(c, "ov-x", &st) < 0)
		die("MountDisk ov-x: %s", st.msg);
	r = hs_mount(c, "ov-y", &st);
	if (expect_drop && (r == 0 || st.code != ST_UNAVAILABLE))
		die("overlapping bring-ups: the connection was not dropped (%s)", st.msg);
	if (!expect_drop && r < 0)
		die("overlapping bring-ups without the switch: %s", st.msg);
	printf("ok   overlapping bring-ups: %s\n", expect_drop ? "connection dropped" : "allowed");
	rpc_client_free(c);
	return 0;
}

/* ---- regression scenarios ---- */

/* Call and expect the status code `code`; with `want` set, the message must contain it. */
static void
cl_expect(struct rpc_client *c, const char *what, const char *method, json_t *payload, int code,
    const char *want)
{
	struct status st;
	int r = cl_call_code(c, method, payload, &st);

	if (r != code)
		die("%s: %s answered %s (%s), expected %s", what, method, status_code_name(r),
		    r != 0 ? st.msg : "", status_code_name(code));
	if (want != NULL && strstr(st.msg, want) == NULL)
		die("%s: %s message \"%s\" does not contain \"%s\"", what, method, st.msg, want);
	printf("ok   %s: %s %s%s%s\n", what, method, status_code_name(r), r != 0 ? ": " : "",
	    r != 0 ? st.msg : "");
}

/* Create DIR/NAME (an empty file). */
static void
cl_touch(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create %s: %s", path, strerror(errno));
	close(fd);
}

/* Wait (at most timeout_ms) until DIR/NAME exists. */
static void
cl_wait_file(const char *dir, const char *name, int timeout_ms)
{
	int64_t deadline = time_mono_ms() + timeout_ms;
	char path[4096];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	while (access(path, F_OK) < 0) {
		if (time_mono_ms() > deadline)
			die("%s did not appear within %d ms", path, timeout_ms);
		usleep(20000);
	}
}

/* The "status" field of ProcessState. */
static char *
cl_proc_status(struct rpc_client *c, const char *id, const char *exec_id)
{
	const char *status = NULL;
	struct status st;
	json_t *resp;
	char *r;

	resp = cl_call(c, "ProcessState", json_pack("{s:s, s:s}", "id", id, "exec_id", exec_id));
	if (msg_get_string(resp, "response", "status", true, &status, &st) < 0)
		die("ProcessState: %s", st.msg);
	r = xstrdup(status);
	json_decref(resp);
	return r;
}

/* A stdout reader that reads nothing for delay_s seconds loses no byte, and sees the exit last. */
static int
cmd_slowread(long n, int delay_s)
{
	struct rpc_client *c = cl_control(true);
	char *args[4] = {"head", "-c", NULL, "/dev/zero"};
	struct out_job oj = {0};
	int rcv = 65536;
	char nbuf[32];
	pthread_t t;

	snprintf(nbuf, sizeof nbuf, "%ld", n);
	args[2] = nbuf;
	oj.sock = cl_start_streamed(c, "slow", args, 4, "stdout", NULL);
	setsockopt(oj.sock, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	oj.cid = oj.id = "slow";
	oj.out_fd = -1;
	oj.check_order = true;
	/* The scenario itself: a shim whose FIFO consumer is busy reads nothing for a while. */
	sleep((unsigned)delay_s);
	if (cl_exit_seen("slow", "slow"))
		die("slowread: the exit was published after %d s while the output was unread",
		    delay_s);
	pthread_create(&t, NULL, cl_out_thread, &oj);
	pthread_join(t, NULL);
	if (oj.bytes != (unsigned long long)n)
		die("slowread: %llu of %ld bytes delivered: %lld lost", oj.bytes, n,
		    (long long)n - (long long)oj.bytes);
	if (cl_wait_exit("slow", "slow", 10) != 0)
		die("slowread: exit status");
	close(oj.sock);
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "slow")));
	printf("ok   slowread: %ld bytes after a %d s stall, exit after EOF\n", n, delay_s);
	rpc_client_free(c);
	return 0;
}

/*
 * The shim's end of a stdout stream closes in the middle of a big frame, whose payload the
 * agent splices (the socket's ~200 KiB buffer keeps a 1 MiB frame on the wire): the agent drops the
 * rest of that frame, drains the process's pipe to its end and publishes the exit. The process
 * writes 64 MiB, far more than the pipes hold, so it finishes only if it is drained.
 */
static int
cmd_dropout(void)
{
	struct rpc_client *c = cl_control(true);
	char *args[4] = {"head", "-c", "67108864", "/dev/zero"};
	static uint8_t buf[65536];
	uint32_t len = 0, got = 0;
	uint8_t hdr[4];
	ssize_t n;
	int sock;

	sock = cl_start_streamed(c, "drop", args, 4, "stdout", NULL);
	/* Walk the frames until one bigger than the agent's copy limit is half read. */
	for (;;) {
		if (read_full(sock, hdr, sizeof hdr) < 0)
			die("dropout: the stream ended before a big frame");
		len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
		      hdr[3];
		if (len == 0 || len > STREAM_WRITE_MAX)
			die("dropout: a frame of %u bytes", len);
		if (len > 256 * 1024)
			break;
		for (got = 0; got < len; got += (uint32_t)n) {
			n = read(sock, buf, len - got < sizeof buf ? len - got : sizeof buf);
			if (n <= 0)
				die("dropout: the stream ended inside a frame");
		}
	}
	if (read_full(sock, buf, sizeof buf) < 0)
		die("dropout: the stream ended inside a frame");
	close(sock);
	if (cl_wait_exit("drop", "drop", 20) != 0)
		die("dropout: exit status");
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "drop")));
	printf("ok   dropout: the socket closed %zu bytes into a frame of %u: process drained, "
	       "exit 0 published\n",
	    sizeof buf, len);
	rpc_client_free(c);
	return 0;
}

/* head's write(2) byte count from /proc/PID/io, or -1 when unreadable. */
static long long
cl_wchar(int64_t pid)
{
	char path[64], line[128];
	long long w = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%lld/io", (long long)pid);
	f = fopen(path, "re");
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "wchar: %lld", &w) == 1)
			break;
	}
	if (f != NULL)
		fclose(f);
	return w;
}

/*
 * The process dies while its stdout pipe is full and the stream is paused by a reader that
 * reads nothing for delay_s seconds: the exit waits for the output, and nothing is dropped.
 */
static int
cmd_slowkill(int delay_s)
{
	struct rpc_client *c = cl_control(true);
	char *args[4] = {"head", "-c", "100000000", "/dev/zero"};
	long long w = -1, last = -2;
	struct out_job oj = {0};
	int64_t pid = 0, deadline;
	int rcv = 65536;
	pthread_t t;

	oj.sock = cl_start_streamed(c, "slowk", args, 4, "stdout", &pid);
	setsockopt(oj.sock, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	oj.cid = oj.id = "slowk";
	oj.out_fd = -1;
	oj.check_order = true;
	/* head blocks once the agent paused the stream and the pipe is full. */
	deadline = time_mono_ms() + 5000;
	while ((w = cl_wchar(pid)) != last || w < 0) {
		if (time_mono_ms() > deadline)
			die("slowkill: head's output did not stall (wchar %lld)", w);
		last = w;
		usleep(300000);
	}
	json_decref(cl_call(c, "SignalProcess",
	    json_pack("{s:s, s:s, s:i}", "id", "slowk", "exec_id", "", "signal", SIGKILL)));
	/* The scenario itself: a shim whose FIFO consumer is busy reads nothing for a while. */
	sleep((unsigned)delay_s);
	if (cl_exit_seen("slowk", "slowk"))
		die("slowkill: the exit was published %d s after the kill while the output was "
		    "unread",
		    delay_s);
	pthread_create(&t, NULL, cl_out_thread, &oj);
	pthread_join(t, NULL);
	if (oj.bytes < (unsigned long long)w)
		die("slowkill: head wrote %lld bytes, %llu delivered: %lld lost", w, oj.bytes,
		    w - (long long)oj.bytes);
	if (cl_wait_exit("slowk", "slowk", 10) != 137)
		die("slowkill: exit status");
	close(oj.sock);
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "slowk")));
	printf("ok   slowkill: %llu bytes (head wrote %lld) after a %d s stall, exit after EOF\n",
	    oj.bytes, w, delay_s);
	rpc_client_free(c);
	return 0;
}

/* CreateContainer of `true` as user answers code (an OK container is deleted again). */
static int
cmd_usercheck(const char *user, const char *code_name)
{
	struct rpc_client *c = cl_control(true);
	char *args[1] = {"true"};
	json_t *process = cl_process(args, 1);
	int code = status_code_parse(code_name);
	char what[128];

	if (code < 0)
		die("usercheck: unknown status code %s", code_name);
	json_object_set_new(process, "user", cl_user(user));
	snprintf(what, sizeof what, "user %s", user);
	cl_expect(c, what, "CreateContainer",
	    json_pack("{s:s, s:{s:o}}", "id", "usr", "spec", "process", process), code, NULL);
	if (code == 0)
		json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "usr")));
	rpc_client_free(c);
	return 0;
}

/* Run `sh -c script` with no streams and wait for its exit. */
static void
cl_run_quiet(struct rpc_client *c, const char *id, const char *script)
{
	char *args[3] = {"sh", "-c", (char *)script};

	json_decref(cl_call(c, "CreateContainer",
	    json_pack("{s:s, s:{s:o}}", "id", id, "spec", "process", cl_process(args, 3))));
	json_decref(cl_call(c, "StartProcess", json_pack("{s:s}", "id", id)));
	cl_wait_exit(id, id, 10);
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", id)));
}

/*
 * An orphan reaped by the subreaper must not be remembered: a later process that gets its pid
 * (steered through ns_last_pid) would otherwise be reported exited while it lives.
 */
static int
cmd_pidreuse(const char *file)
{
	struct rpc_client *c = cl_control(true);
	char script[4200], id[32], buf[32], *status;
	int64_t deadline, pid = 0;
	struct status st;
	json_t *resp;
	int try, fd, bg;
	char *args[2] = {"sleep", "30"};
	ssize_t n;

	snprintf(script, sizeof script, "sleep 0.2 & echo $! > %s; exit 0", file);
	for (try = 0; try < 5; try++) {
		snprintf(id, sizeof id, "orph-%d", try);
		cl_run_quiet(c, id, script);
		fd = open(file, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		bg = atoi(buf);
		if (bg <= 1)
			die("pidreuse: no orphan pid in %s", file);
		/* The agent reaps the orphan (a zombie until then). */
		deadline = time_mono_ms() + 5000;
		while (kill(bg, 0) == 0 || errno != ESRCH) {
			if (time_mono_ms() > deadline)
				die("pidreuse: orphan %d was not reaped within 5 s", bg);
			usleep(20000);
		}
		fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || dprintf(fd, "%d", bg - 1) < 0) {
			printf("SKIP: cannot write /proc/sys/kernel/ns_last_pid: %s\n",
			    strerror(errno));
			if (fd >= 0)
				close(fd);
			rpc_client_free(c);
			return 77;
		}
		close(fd);
		snprintf(id, sizeof id, "victim-%d", try);
		resp = cl_call(c, "CreateContainer",
		    json_pack("{s:s, s:{s:o}}", "id", id, "spec", "process", cl_process(args, 2)));
		if (msg_get_i64(resp, "response", "pid", true, &pid, &st) < 0)
			die("CreateContainer: %s", st.msg);
		json_decref(resp);
		if (pid != bg) {
			printf("     pid %lld instead of %d (someone else forked): again\n",
			    (long long)pid, bg);
			json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", id)));
			continue;
		}
		status = cl_proc_status(c, id, "");
		if (strcmp(status, "created") != 0 || cl_exit_seen(id, id))
			die("pidreuse: %s (pid %lld, alive: %d) is \"%s\": it got the old orphan's "
			    "exit",
			    id, (long long)pid, kill((pid_t)pid, 0) == 0, status);
		free(status);
		json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", id)));
		printf(
		    "ok   pidreuse: process with the reaped orphan's pid %d stays created\n", bg);
		rpc_client_free(c);
		return 0;
	}
	printf("SKIP: could not steer a new process onto the orphan's pid\n");
	rpc_client_free(c);
	return 77;
}

struct call_job {
	struct rpc_client *c;
	const char *method;
	json_t *payload; /* stolen */
	struct status st;
	atomic_int done;
	int code;
};

static void *
cl_call_thread(void *arg)
{
	struct call_job *j = arg;

	j->code = cl_call_code(j->c, j->method, j->payload, &j->st);
	atomic_store(&j->done, 1);
	return NULL;
}

/* The fake runtime's spec: `sleep 60`, root "/". */
static json_t *
cl_fake_spec(void)
{
	char *args[2] = {"sleep", "60"};

	return json_pack("{s:o, s:{s:s}}", "process", cl_process(args, 2), "root", "path", "/");
}

/* Kill the init of id (runtime started: it runs) and wait for its exit. */
static void
cl_kill_wait(struct rpc_client *c, const char *id)
{
	json_decref(cl_call(c, "SignalProcess",
	    json_pack("{s:s, s:s, s:i}", "id", id, "exec_id", "", "signal", SIGKILL)));
	if (cl_wait_exit(id, id, 10) != 137)
		die("%s: exit status is not 137", id);
}

/* Lifecycle races against a slow runtime (the fake runtime of agent_regress.sh, in dir). */
static int
cmd_lifecycle(const char *dir)
{
	struct rpc_client *c = cl_control(true);
	struct call_job a = {0}, b = {0};
	char *args[2] = {"sleep", "1"};
	char path[4096], line[64];
	pthread_t ta, tb;
	int64_t deadline;
	int lines = 0;
	FILE *f;

	/* 1. While runc create runs, Start / Exec / Delete are refused. */
	a.c = c;
	a.method = "CreateContainer";
	a.payload = json_pack("{s:s, s:o}", "id", "cr", "spec", cl_fake_spec());
	pthread_create(&ta, NULL, cl_call_thread, &a);
	cl_wait_file(dir, "cr.create-started", 10000);
	cl_expect(c, "creating", "StartProcess", json_pack("{s:s}", "id", "cr"),
	    ST_FAILED_PRECONDITION, NULL);
	cl_expect(c, "creating", "ExecProcess",
	    json_pack(
		"{s:s, s:s, s:o}", "id", "cr", "exec_id", "e1", "process", cl_process(args, 2)),
	    ST_FAILED_PRECONDITION, NULL);
	cl_expect(c, "creating", "DeleteProcess", json_pack("{s:s}", "id", "cr"),
	    ST_FAILED_PRECONDITION, NULL);
	cl_touch(dir, "cr.create-go");
	pthread_join(ta, NULL);
	if (a.code != 0)
		die("creating: CreateContainer: %s: %s", status_code_name(a.code), a.st.msg);
	cl_expect(c, "created", "StartProcess", json_pack("{s:s}", "id", "cr"), 0, NULL);
	cl_kill_wait(c, "cr");
	cl_touch(dir, "cr.delete-go");
	cl_expect(c, "created", "DeleteProcess", json_pack("{s:s}", "id", "cr"), 0, NULL);

	/* 2. Two DeleteProcess of one init: the runtime's delete runs once. */
	cl_touch(dir, "dt.create-go");
	json_decref(cl_call(
	    c, "CreateContainer", json_pack("{s:s, s:o}", "id", "dt", "spec", cl_fake_spec())));
	json_decref(cl_call(c, "StartProcess", json_pack("{s:s}", "id", "dt")));
	cl_kill_wait(c, "dt");
	a = (struct call_job){.c = c, .method = "DeleteProcess"};
	a.payload = json_pack("{s:s}", "id", "dt");
	pthread_create(&ta, NULL, cl_call_thread, &a);
	cl_wait_file(dir, "dt.delete-started", 10000);
	b = (struct call_job){.c = c, .method = "DeleteProcess"};
	b.payload = json_pack("{s:s}", "id", "dt");
	pthread_create(&tb, NULL, cl_call_thread, &b);
	deadline = time_mono_ms() + 3000;
	while (!atomic_load(&b.done) && time_mono_ms() < deadline)
		usleep(20000);
	cl_touch(dir, "dt.delete-go");
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	if (a.code != 0)
		die("delete twice: first DeleteProcess: %s: %s", status_code_name(a.code),
		    a.st.msg);
	if (b.code != ST_FAILED_PRECONDITION)
		die("delete twice: second DeleteProcess answered %s, expected FAILED_PRECONDITION",
		    status_code_name(b.code));
	snprintf(path, sizeof path, "%s/dt.delete-count", dir);
	f = fopen(path, "re");
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		lines++;
	if (f != NULL)
		fclose(f);
	if (lines != 1)
		die("delete twice: the runtime's delete ran %d times", lines);
	printf("ok   delete twice: second answered FAILED_PRECONDITION (%s); runtime delete ran "
	       "once\n",
	    b.st.msg);

	/* 3. A failing command reports its own error, not an earlier command's. */
	cl_touch(dir, "re.create-go");
	cl_touch(dir, "re.delete-go");
	json_decref(cl_call(
	    c, "CreateContainer", json_pack("{s:s, s:o}", "id", "re", "spec", cl_fake_spec())));
	json_decref(cl_call(c, "StartProcess", json_pack("{s:s}", "id", "re")));
	cl_expect(c, "runtime error", "PauseContainer", json_pack("{s:s}", "id", "re"), ST_INTERNAL,
	    "pause broke");
	cl_expect(c, "runtime error", "ResumeContainer", json_pack("{s:s}", "id", "re"),
	    ST_INTERNAL, "resume broke");
	cl_kill_wait(c, "re");
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "re")));
	rpc_client_free(c);
	return 0;
}

/*
 * The only subscriber's connection is closing (dropped by the bring-up overlap switch while
 * its output is unread): an exit published then is kept for the next subscriber.
 */
static int
cmd_closingsub(void)
{
	struct rpc_client *b = cl_control(false), *c;
	char *args[2] = {"sleep", "30"};
	size_t len, flen, total = 0, cap = 4 << 20;
	uint8_t *all = xmalloc(cap), *frame;
	int64_t deadline;
	int a, avail, last = -1, i;
	struct status st;
	char *req, *status = NULL;

	json_decref(cl_call(b, "CreateContainer",
	    json_pack("{s:s, s:{s:o}}", "id", "ev1", "spec", "process", cl_process(args, 2))));
	json_decref(cl_call(b, "StartProcess", json_pack("{s:s}", "id", "ev1")));

	/* A subscriber that never reads: its answers pile up in the agent. */
	a = cl_dial(1024);
	for (i = 0; i < 30000; i++) {
		req = msg_request_encode(
		    PROTOCOL_AGENT_SERVICE, i == 0 ? "SubscribeEvents" : "Ping", NULL, 0, &len);
		frame = frame_encode((uint32_t)(2 * i + 1), FRAME_TYPE_REQUEST,
		    i == 0 ? FRAME_FLAG_REMOTE_OPEN : 0, req, len, &flen);
		if (total + flen > cap)
			die("closingsub: request buffer");
		memcpy(all + total, frame, flen);
		total += flen;
		free(frame);
		free(req);
	}
	if (write_all(a, all, total) < 0)
		die("closingsub: write: %s", strerror(errno));
	free(all);
	/* Wait until its socket buffer is full: the rest waits in the agent. */
	deadline = time_mono_ms() + 5000;
	for (;;) {
		usleep(100000);
		if (ioctl(a, FIONREAD, &avail) < 0)
			die("FIONREAD: %s", strerror(errno));
		if (avail > 0 && avail == last)
			break;
		if (time_mono_ms() > deadline)
			die("closingsub: the agent did not answer the subscriber's Pings");
		last = avail;
	}

	/* Overlapping bring-ups drop every control connection: the subscriber is closing. */
	if (hs_mount(b, "ov-x", &st) < 0)
		die("MountDisk ov-x: %s", st.msg);
	if (hs_mount(b, "ov-y", &st) == 0)
		die("closingsub: the overlap switch did not drop the connections");
	rpc_client_free(b);

	c = cl_control(false);
	json_decref(cl_call(c, "SignalProcess",
	    json_pack("{s:s, s:s, s:i}", "id", "ev1", "exec_id", "", "signal", SIGKILL)));
	deadline = time_mono_ms() + 3000;
	for (;;) {
		free(status);
		status = cl_proc_status(c, "ev1", "");
		if (strcmp(status, "stopped") == 0)
			break;
		if (time_mono_ms() > deadline)
			die("closingsub: ev1 is still %s", status);
		usleep(20000);
	}
	free(status);
	/* Published while the only subscriber was closing: the next one gets it. */
	if (rpc_client_subscribe(c, PROTOCOL_AGENT_SERVICE, "SubscribeEvents", NULL, CALL_MS,
		cl_on_event, NULL, &st) < 0)
		die("SubscribeEvents: %s", st.msg);
	if (cl_wait_exit("ev1", "ev1", 3) != 137)
		die("closingsub: exit status");
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", "ev1")));
	close(a);
	rpc_client_free(c);
	printf("ok   closingsub: the exit reached the next subscriber\n");
	return 0;
}

/* One terminal `cat`: mode 0 CloseStdin with a stdin stream, 1 "abc" + stdin EOF, 2 no stdin
 * stream and CloseStdin. cat must see the end of its input and exit 0. */
static void
cl_pty_case(struct rpc_client *c, const char *id, int mode)
{
	char *args[1] = {"cat"};
	struct out_job oj = {0};
	uint8_t hdr[4];
	pthread_t t;
	int in = -1;

	json_decref(cl_call(c, "CreateContainer",
	    json_pack("{s:s, s:{s:o}, s:b, s:b, s:b}", "id", id, "spec", "process",
		cl_process(args, 1), "terminal", 1, "stdin", mode != 2, "stdout", 1)));
	oj.sock = cl_stream(id, "", "stdout");
	oj.cid = oj.id = id;
	oj.out_fd = -1;
	pthread_create(&t, NULL, cl_out_thread, &oj);
	if (mode != 2)
		in = cl_stream(id, "", "stdin");
	json_decref(cl_call(c, "StartProcess", json_pack("{s:s}", "id", id)));
	if (mode == 1) {
		if (stream_write_frames(in, "abc", 3) < 0 || stream_write_frames(in, NULL, 0) < 0)
			die("%s: stdin: %s", id, strerror(errno));
	} else {
		json_decref(cl_call(c, "CloseStdin", json_pack("{s:s}", "id", id)));
	}
	if (cl_wait_exit(id, id, 5) != 0)
		die("%s: cat exited non-zero", id);
	if (mode != 2) {
		if (mode == 0 && stream_write_frames(in, NULL, 0) < 0)
			die("%s: stdin EOF: %s", id, strerror(errno));
		if (read_full(in, hdr, 4) < 0 || memcmp(hdr, "\0\0\0\0", 4) != 0)
			die("%s: no EOF frame on stdin", id);
		close(in);
	}
	pthread_join(t, NULL);
	close(oj.sock);
	if (mode == 1 && oj.bytes < 3)
		die("%s: %llu bytes of output, expected the echo of abc", id, oj.bytes);
	json_decref(cl_call(c, "DeleteProcess", json_pack("{s:s}", "id", id)));
	printf("ok   %s: cat saw the end of its terminal input\n", id);
}

static int
cmd_ptyeof(void)
{
	struct rpc_client *c = cl_control(true);

	cl_pty_case(c, "pty-closestdin", 0);
	cl_pty_case(c, "pty-eof-midline", 1);
	cl_pty_case(c, "pty-nostream", 2);
	rpc_client_free(c);
	return 0;
}

/* One control call with a JSON payload from the command line; the answer goes to stdout. */
static int
cmd_call(const char *method, const char *text)
{
	struct rpc_client *c = cl_control(false);
	json_t *payload, *resp = NULL;
	json_error_t jerr;
	struct status st;
	char *s;

	payload = json_loads(text, 0, &jerr);
	if (payload == NULL)
		die("call: payload: %s", jerr.text);
	if (rpc_client_call(c, PROTOCOL_AGENT_SERVICE, method, payload, CALL_MS, &resp, &st) < 0) {
		printf("%s %s\n", status_code_name(st.code), st.msg);
	} else {
		s = json_dumps(resp, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		printf("OK %s\n", s != NULL ? s : "null");
		free(s);
	}
	json_decref(payload);
	json_decref(resp);
	rpc_client_free(c);
	return 0;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc < 3) {
		fprintf(stderr, "usage: agent_client "
				"(handshake|ping|run|many|bigframe|oci|ociterm|overlap|slowread|"
				"slowkill|dropout|pidreuse|lifecycle|closingsub|ptyeof|usercheck|"
				"call) SOCK ...\n");
		return 2;
	}
	sock_path = argv[2];
	if (strcmp(argv[1], "handshake") == 0)
		return cmd_handshake();
	if (strcmp(argv[1], "ping") == 0) {
		struct rpc_client *c = cl_control(false);
		json_t *r = cl_call(c, "Ping", NULL);
		char *s = json_dumps(r, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(r);
		rpc_client_free(c);
		return 0;
	}
	if (strcmp(argv[1], "call") == 0 && argc > 4)
		return cmd_call(argv[3], argv[4]);
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 3, argv + 3);
	if (strcmp(argv[1], "many") == 0 && argc > 3)
		return cmd_many(atoi(argv[3]));
	if (strcmp(argv[1], "bigframe") == 0)
		return cmd_bigframe();
	if (strcmp(argv[1], "overlap") == 0 && argc > 3)
		return cmd_overlap(strcmp(argv[3], "1") == 0);
	if (strcmp(argv[1], "oci") == 0 && argc > 3)
		return cmd_oci(argv[3]);
	if (strcmp(argv[1], "ociterm") == 0 && argc > 3)
		return cmd_ociterm(argv[3]);
	if (strcmp(argv[1], "slowread") == 0 && argc > 4)
		return cmd_slowread(atol(argv[3]), atoi(argv[4]));
	if (strcmp(argv[1], "slowkill") == 0 && argc > 3)
		return cmd_slowkill(atoi(argv[3]));
	if (strcmp(argv[1], "dropout") == 0)
		return cmd_dropout();
	if (strcmp(argv[1], "usercheck") == 0 && argc > 4)
		return cmd_usercheck(argv[3], argv[4]);
	if (strcmp(argv[1], "pidreuse") == 0 && argc > 3)
		return cmd_pidreuse(argv[3]);
	if (strcmp(argv[1], "lifecycle") == 0 && argc > 3)
		return cmd_lifecycle(argv[3]);
	if (strcmp(argv[1], "closingsub") == 0)
		return cmd_closingsub();
	if (strcmp(argv[1], "ptyeof") == 0)
		return cmd_ptyeof();
	fprintf(stderr, "agent_client: unknown command %s\n", argv[1]);
	return 2;
}
