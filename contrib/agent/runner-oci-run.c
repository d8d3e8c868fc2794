/*
 * runner-oci-run.c: one runtime command for the oci runner (ro_run): spawn, log, pid file,
 * terminal and deadline.
 *
 * Every runtime command runs as a helper child (proc_helper_spawn) reaped through the SIGCHLD
 * path, so the loop never waits on runc. Each command writes one JSON log in the container's
 * state directory (log-N.json, removed when the command is done), whose last error line (read
 * from its last RO_LOG_TAIL bytes) becomes the INTERNAL message when that command fails.
 * `runc create` and `runc exec --detach` get the process's stdio pipes as their own stdio,
 * which runc hands to the container process; while they run the process is under a pid claim
 * (proc_claim_begin), so an exit reaped before the pid file was read still reaches it.
 *
 * Terminal mode: runc allocates the pty inside the container and sends its master over a Unix
 * socket (--console-socket STATE_DIR/<id>/console-N.sock) as one SCM_RIGHTS message. The
 * listener is registered in the loop while `runc create` / `runc exec --detach --tty` runs:
 * one connection is accepted (the listener is closed and its path removed then), one bounded
 * message read with MSG_CMSG_CLOEXEC. When runc exits the socket is polled once more (what runc
 * sent before exiting is queued there), and only a successful command hands the master to the
 * process (proc_set_pty_master), where it serves exactly as the process runner's own pty
 * master. The struct ro_call owns the listener, the accepted connection, the received fd and
 * the deadline timer until then; ro_call_free() closes whatever is left, on every path.
 *
 * Deadlines: every runtime command has one timer (k->timer). A command that has not exited
 * within RO_COMMAND_TIMEOUT_MS has its process group killed (helpers run in their own session)
 * and the call fails DEADLINE_EXCEEDED "no exit within N ms (killed)". The console deadline is
 * the same timer armed earlier: while the master is awaited it fires at the sooner of the two
 * deadlines, and once the console is settled it is re-armed for what is left of the command's.
 *
 * Console failures: a descriptor that is not a terminal is refused like a bad message; a
 * runtime that has not delivered the master within RO_CONSOLE_TIMEOUT_MS (it never connects,
 * or connects and never sends) has its process group killed and the call fails
 * DEADLINE_EXCEEDED. An exec whose runtime succeeded without a terminal, or timed out, has its
 * process killed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "runner-oci.h"
#include "util.h"

/* How much of a command's log is read for its error message. */
#define RO_LOG_TAIL (64 * 1024)
/* How long the runtime has to send the terminal (VMSHIM_TEST_CONSOLE_TIMEOUT_MS replaces it). */
#define RO_CONSOLE_TIMEOUT_MS 30000
/* How long any runtime command may run (VMSHIM_TEST_RUNTIME_TIMEOUT_MS replaces it). */
#define RO_COMMAND_TIMEOUT_MS 60000

static unsigned ro_log_seq;

static void ro_console_cb(evutil_socket_t fd, short what, void *arg);

/* A deadline in ms: def, or the test knob env when it shortens it (warned about once). */
static int
ro_knob_ms(int *cache, const char *env, int def, const char *what)
{
	const char *v;
	uint32_t n;

	if (*cache >= 0)
		return *cache;
	*cache = def;
	v = getenv(env);
	if (v != NULL && parse_u32(v, &n) == 0 && n > 0 && n <= (uint32_t)def) {
		*cache = (int)n;
		log_warn("%s: %s deadline %d ms (test knob)", env, what, *cache);
	}
	return *cache;
}

/* The console deadline in ms: RO_CONSOLE_TIMEOUT_MS, or VMSHIM_TEST_CONSOLE_TIMEOUT_MS. */
static int
ro_console_timeout_ms(void)
{
	static int ms = -1;

	return ro_knob_ms(&ms, "VMSHIM_TEST_CONSOLE_TIMEOUT_MS", RO_CONSOLE_TIMEOUT_MS, "console");
}

/* The command deadline in ms: RO_COMMAND_TIMEOUT_MS, or VMSHIM_TEST_RUNTIME_TIMEOUT_MS. */
static int
ro_command_timeout_ms(void)
{
	static int ms = -1;

	return ro_knob_ms(
	    &ms, "VMSHIM_TEST_RUNTIME_TIMEOUT_MS", RO_COMMAND_TIMEOUT_MS, "runtime command");
}

/* The monotonic clock as a timeval (deadlines must not follow the wall clock). */
static void
ro_now(struct timeval *tv)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
}

/* Whether the console deadline is the one the timer waits for now. */
static bool
ro_console_first(struct ro_call *k)
{
	return k->console && ro_console_timeout_ms() <= ro_command_timeout_ms();
}

/* (Re-)arm the deadline timer for the deadline that comes first now, counted from the spawn. */
static void
ro_deadline_arm(struct ro_call *k)
{
	struct timeval now, elapsed, tv;
	int ms;

	if (k->timer == NULL)
		return;
	ms = ro_console_first(k) ? ro_console_timeout_ms() : ro_command_timeout_ms();
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	ro_now(&now);
	evutil_timersub(&now, &k->started, &elapsed);
	if (evutil_timercmp(&elapsed, &tv, <))
		evutil_timersub(&tv, &elapsed, &tv);
	else
		evutil_timerclear(&tv);
	evtimer_add(k->timer, &tv);
}

/* The runtime's --root: STATE_DIR/runc (caller frees). */
static char *
ro_root(void)
{
	char *root;

	xasprintf(&root, "%s/runc", agent.state_dir);
	return root;
}

int
ro_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* The last error message of this command's JSON log (its tail only), or the captured output. */
static void
ro_error(struct ro_call *k, int wstatus, const char *output, struct status *st)
{
	char line[4096], msg[1024] = "";
	json_t *j;
	FILE *f;

	f = fopen(k->log, "re");
	if (f != NULL && fseeko(f, 0, SEEK_END) == 0 && ftello(f) > RO_LOG_TAIL) {
		/* Skip to the tail, then past the partial line there. */
		if (fseeko(f, -RO_LOG_TAIL, SEEK_END) == 0 && fgets(line, sizeof line, f) == NULL)
			line[0] = '\0';
	} else if (f != NULL) {
		rewind(f);
	}
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		j = json_loads(line, 0, NULL);
		if (j != NULL && json_is_string(json_object_get(j, "msg")) &&
		    json_is_string(json_object_get(j, "level")) &&
		    strcmp(json_string_value(json_object_get(j, "level")), "error") == 0)
			snprintf(
			    msg, sizeof msg, "%s", json_string_value(json_object_get(j, "msg")));
		json_decref(j);
	}
	if (f != NULL)
		fclose(f);
	if (msg[0] == '\0')
		snprintf(msg, sizeof msg, "%.*s", 1000, output);
	msg[strcspn(msg, "\n")] = '\0';
	status_set(st, ST_INTERNAL, "%s %s: exit status %d: %s", agent.runtime, k->what,
	    proc_wait_status(wstatus), msg);
}

/* Close the console listener (and remove its path) and the accepted connection. */
static void
ro_console_close(struct ro_call *k)
{
	if (k->con_ev != NULL)
		event_free(k->con_ev);
	k->con_ev = NULL;
	if (k->con_listen >= 0)
		close(k->con_listen);
	k->con_listen = -1;
	if (k->con_path != NULL)
		unlink(k->con_path);
	free(k->con_path);
	k->con_path = NULL;
	if (k->con_conn >= 0)
		close(k->con_conn);
	k->con_conn = -1;
}

/* Read runc's one message: exactly one SCM_RIGHTS fd. 0 when finished, 1 to wait for more. */
static int
ro_console_recv(struct ro_call *k)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	char data[512]; /* runc sends the pty's name as the payload */
	struct iovec iov = {data, sizeof data};
	struct msghdr m = {0};
	struct cmsghdr *cm;
	int fds[16], nfds = 0, i, n1;
	ssize_t n;

	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof ctl.buf;
	do {
		n = recvmsg(k->con_conn, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 1;
	if (n < 0) {
		snprintf(
		    k->con_err, sizeof k->con_err, "console socket: recvmsg: %s", strerror(errno));
		return 0;
	}
	for (cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n1 = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < n1 && nfds < (int)ARRAY_SIZE(fds); i++)
			memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	if (nfds == 1 && !(m.msg_flags & MSG_CTRUNC) && isatty(fds[0])) {
		k->con_master = fds[0];
		return 0;
	}
	if (nfds == 1 && !(m.msg_flags & MSG_CTRUNC)) {
		close(fds[0]);
		snprintf(k->con_err, sizeof k->con_err,
		    "console socket: the descriptor received is not a terminal");
		return 0;
	}
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (n == 0 && nfds == 0)
		snprintf(k->con_err, sizeof k->con_err,
		    "console socket: closed without sending the terminal");
	else
		snprintf(k->con_err, sizeof k->con_err,
		    "console socket: a message with %d descriptor(s)%s, expected exactly 1", nfds,
		    (m.msg_flags & MSG_CTRUNC) ? " (truncated)" : "");
	return 0;
}

/*
 * Make progress on the console socket without blocking: accept runc's connection (then the
 * listener goes), read its message (then the connection goes). Returns 1 while still waiting.
 */
static int
ro_console_step(struct ro_call *k)
{
	int fd;

	if (k->con_conn < 0) {
		if (k->con_listen < 0)
			return 0;
		fd = accept4(k->con_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return 1; /* EAGAIN (or a connection that went away): keep listening */
		ro_console_close(k);
		k->con_conn = fd;
		k->con_ev = event_new(agent.base, fd, EV_READ | EV_PERSIST, ro_console_cb, k);
		event_add(k->con_ev, NULL);
	}
	if (ro_console_recv(k) != 0)
		return 1;
	ro_console_close(k);
	/* The console is settled: only the command's own deadline is left. */
	k->console = false;
	ro_deadline_arm(k);
	return 0;
}

/* The console listener or connection is readable. */
static void
ro_console_cb(evutil_socket_t fd, short what, void *arg)
{
	ro_console_step(arg);
}

/* A deadline passed: kill the runtime command's process group; its reaping answers. */
static void
ro_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ro_call *k = arg;

	if (ro_console_first(k))
		snprintf(k->timeout_msg, sizeof k->timeout_msg,
		    "no terminal descriptor on the console socket within %d ms (runtime killed)",
		    ro_console_timeout_ms());
	else
		snprintf(k->timeout_msg, sizeof k->timeout_msg, "no exit within %d ms (killed)",
		    ro_command_timeout_ms());
	log_warn_id(k->c->id, k->p != NULL ? k->p->exec_id : NULL, "%s %s: %s", agent.runtime,
	    k->what, k->timeout_msg);
	k->console = false;
	ro_console_close(k);
	/* The helper leads its own session: the group reaches whatever it forked there. */
	if (k->pid > 0 && kill(-k->pid, SIGKILL) < 0)
		kill(k->pid, SIGKILL);
}

/* Listen on a fresh console socket for this command; -1 with *st. */
static int
ro_console_open(struct ro_call *k, const char *dir, struct status *st)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	xasprintf(&k->con_path, "%s/console-%u.sock", dir, ro_log_seq);
	if (strlen(k->con_path) >= sizeof sa.sun_path)
		return status_set(st, ST_INTERNAL, "console socket path too long: %s", k->con_path);
	memcpy(sa.sun_path, k->con_path, strlen(k->con_path) + 1);
	unlink(k->con_path);
	k->con_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (k->con_listen < 0)
		return status_errno(st, ST_INTERNAL, errno, "console socket");
	if (bind(k->con_listen, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(k->con_listen, 1) < 0)
		return status_errno(st, ST_INTERNAL, errno, "console socket %s", k->con_path);
	k->con_ev = event_new(agent.base, k->con_listen, EV_READ | EV_PERSIST, ro_console_cb, k);
	event_add(k->con_ev, NULL);
	return 0;
}

/* Free a finished command: its claim ends, its log goes. */
static void
ro_call_free(struct ro_call *k)
{
	ro_console_close(k);
	if (k->timer != NULL)
		event_free(k->timer);
	if (k->con_master >= 0)
		close(k->con_master);
	if (k->p != NULL) {
		if (k->claim)
			proc_claim_end(k->p);
		proc_unref(k->p);
	}
	container_unref(k->c);
	if (k->log != NULL)
		unlink(k->log);
	free(k->log);
	free(k->pid_file);
	free(k);
}

/* The pid in this command's pid file; -1 if there is none. */
static int
ro_read_pid(struct ro_call *k, uint32_t *pid)
{
	char buf[32];
	ssize_t n;
	int fd;

	fd = open(k->pid_file, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return n <= 0 || parse_u32(buf, pid) < 0 || *pid == 0 ? -1 : 0;
}

/* A failed exec may have left its process running: it goes (a create is undone by delete). */
static void
ro_kill_exec(struct ro_call *k)
{
	uint32_t pid;

	if (k->p != NULL && k->p != k->c->init && k->pid_file != NULL && ro_read_pid(k, &pid) == 0)
		kill((pid_t)pid, SIGKILL);
}

/* A runtime command finished. */
static void
ro_call_done(int wstatus, const char *output, size_t len, void *arg)
{
	struct ro_call *k = arg;
	struct status st;
	json_t *res = NULL;
	uint32_t pid;

	if (k->timeout_msg[0] != '\0') {
		status_set(
		    &st, ST_DEADLINE_EXCEEDED, "%s %s: %s", agent.runtime, k->what, k->timeout_msg);
		ro_kill_exec(k);
		goto out;
	}
	if (wstatus != 0) {
		ro_error(k, wstatus, output, &st);
		goto out;
	}
	status_clear(&st);
	/* runc has exited: whatever it sent is queued on the socket by now. */
	if (k->con_path != NULL || k->con_conn >= 0 || k->con_listen >= 0) {
		if (ro_console_step(k) != 0 && k->con_master < 0)
			snprintf(k->con_err, sizeof k->con_err,
			    "no terminal descriptor arrived on the console socket before "
			    "it exited");
		ro_console_close(k);
	}
	if (k->con_err[0] != '\0') {
		status_set(&st, ST_INTERNAL, "%s %s: %s", agent.runtime, k->what, k->con_err);
		ro_kill_exec(k);
		goto out;
	}
	if (k->pid_file != NULL) {
		if (ro_read_pid(k, &pid) < 0) {
			status_set(&st, ST_INTERNAL, "%s %s: no pid in %s", agent.runtime, k->what,
			    k->pid_file);
			goto out;
		}
		if (k->p != NULL && k->con_master >= 0)
			proc_set_pty_master(k->p, steal_fd(&k->con_master));
		if (k->p != NULL)
			proc_set_pid(k->p, (pid_t)pid);
	}
	if (k->want_json) {
		res = json_loadb(output, len, 0, NULL);
		if (res == NULL) {
			status_set(
			    &st, ST_INTERNAL, "%s %s: unreadable output", agent.runtime, k->what);
			goto out;
		}
	}
out:
	k->done(&st, res, k->arg);
	json_decref(res);
	ro_call_free(k);
}

void
ro_run(struct container *c, struct proc *p, const char *what, const char *const *args,
    const int fds[3], char *pid_file, bool want_json, bool console, runner_cb done, void *arg)
{
	struct ro_container *rc = c->runner_data;
	cleanup_free char *root = ro_root();
	struct ro_call *k = xcalloc(1, sizeof *k);
	const char *argv[32];
	struct status st;
	size_t n = 0;

	k->c = c;
	container_ref(c);
	if (p != NULL) {
		k->p = p;
		proc_ref(p);
	}
	k->what = what;
	k->done = done;
	k->arg = arg;
	k->pid_file = pid_file;
	k->want_json = want_json;
	k->con_listen = k->con_conn = k->con_master = -1;
	xasprintf(&k->log, "%s/log-%u.json", rc->dir, ++ro_log_seq);
	unlink(k->log);
	if (console && ro_console_open(k, rc->dir, &st) < 0) {
		done(&st, NULL, arg);
		ro_call_free(k);
		return;
	}
	/* The process's pid arrives in the pid file: an early exit is kept for it meanwhile. */
	if (p != NULL && pid_file != NULL) {
		k->claim = true;
		proc_claim_begin(p);
	}
	argv[n++] = agent.runtime;
	argv[n++] = "--root";
	argv[n++] = root;
	argv[n++] = "--log";
	argv[n++] = k->log;
	argv[n++] = "--log-format";
	argv[n++] = "json";
	if (console) {
		argv[n++] = *args++;
		argv[n++] = "--console-socket";
		argv[n++] = k->con_path;
	}
	while (*args != NULL && n < ARRAY_SIZE(argv) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	log_debug_id(c->id, p != NULL ? p->exec_id : NULL, "%s %s", agent.runtime, what);
	k->pid = proc_helper_spawn((char *const *)argv, fds, -1, ro_call_done, k, &st);
	if (k->pid < 0) {
		done(&st, NULL, arg);
		ro_call_free(k);
		return;
	}
	/* One deadline for the whole command (the console's comes first while it applies). */
	k->console = console;
	ro_now(&k->started);
	k->timer = evtimer_new(agent.base, ro_timeout_cb, k);
	ro_deadline_arm(k);
}
