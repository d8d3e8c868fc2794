/*
 * fake_runc.c: a FAKE OCI runtime for tests/integration/agent_console.sh, passed to
 * vmshim-agent as --runtime. It exists because real runc cannot be made to misbehave on demand:
 * the test needs a runtime that fails before the console socket, connects and sends nothing,
 * sends a message without SCM_RIGHTS, two descriptors or one that is not a terminal, or hangs.
 *
 * Runtime role: it parses the command line the agent's oci runner builds (runner-oci.c):
 *
 *   fake_runc --root R --log L --log-format json create --console-socket S --bundle B
 *       --pid-file F ID
 *   fake_runc --root R ... start ID | state ID | kill --all ID SIG | delete --force ID
 *
 * and keeps runc-like state in R/ID/pid (what `delete` must remove). The behaviour of `create`
 * comes from the file $FAKE_RUNC_DIR/ID.mode (first word; "ok" when absent):
 *
 *   ok        pty + container process, the master sent as runc sends it, exit 0
 *   exit      the same, but the container process exits at once
 *   fail      log an error and exit 1 before touching the console socket (no state)
 *   failafter send the master, then log an error and exit 1 (state left, as a crash would)
 *   close     connect, close without sending, exit 0
 *   nofd      connect, send the pty name without SCM_RIGHTS, exit 0
 *   twofds    send two descriptors in one message, exit 0
 *   notty     send /dev/null instead of a terminal, exit 0
 *   hold      connect, the container process keeps the connection open, exit 0 unsent
 *   hang      never connect, never exit (until killed)
 *   hangconn  connect, never send, never exit (until killed)
 *
 * A mode "CMD-hang" (create-hang, start-hang, delete-hang, ...) makes that one command do its
 * work as in "ok" (create: the master sent, or the container made without a terminal; delete:
 * state removed), then never exit (until killed); every other command of the id acts as "ok".
 *
 * `exec --detach [--tty] --pid-file F --process P ID` acts the same with the mode from
 * $FAKE_RUNC_DIR/ID.execmode, without state of its own. Every `delete` appends a line to
 * $FAKE_RUNC_DIR/ID.deleted. The container process is a child that sleeps in pause() until killed;
 * it outlives this program (the agent, a subreaper, reaps it).
 *
 * Client role, `fake_runc call SOCK METHOD JSON`: one Agent call through the hybrid handshake
 * (port 1024), printing "CODE message" or "OK payload"; it exits 0 whatever the code (the shell
 * judges it), 1 when the agent cannot be reached. agent_client has no raw-call mode, and the
 * test needs to send calls (Create with terminal) and to check their codes as they are.
 *
 * Single-threaded except for rpc_client's reader in the client role. Every fd is O_CLOEXEC
 * except the ones handed to the container process on purpose.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "msg.h"
#include "protocol.h"
#include "rpc.h"
#include "testlib.h"
#include "transport.h"
#include "util.h"

struct fr_args {
	const char *root, *log, *cmd, *console, *pid_file, *id;
	bool exec; /* `exec --detach`: no state of its own, mode from ID.execmode */
	char mode[32];
};

/* Append one runc-style JSON error line to the command's log. */
static void
fr_log_error(const struct fr_args *a, const char *msg)
{
	FILE *f;

	if (a->log == NULL || (f = fopen(a->log, "ae")) == NULL)
		return;
	fprintf(f, "{\"level\":\"error\",\"msg\":\"%s\",\"time\":\"2026-01-01T00:00:00Z\"}\n", msg);
	fclose(f);
}

/* The mode of container id: first word of $FAKE_RUNC_DIR/ID.mode, "ok" if none. */
static void
fr_mode(struct fr_args *a)
{
	const char *dir = getenv("FAKE_RUNC_DIR");
	char path[4096];
	FILE *f;

	snprintf(a->mode, sizeof a->mode, "ok");
	if (dir == NULL || a->id == NULL)
		return;
	snprintf(path, sizeof path, "%s/%s.%s", dir, a->id, a->exec ? "execmode" : "mode");
	f = fopen(path, "re");
	if (f == NULL)
		return;
	if (fscanf(f, "%31s", a->mode) != 1)
		snprintf(a->mode, sizeof a->mode, "ok");
	fclose(f);
}

/* Append a line to $FAKE_RUNC_DIR/ID.WHAT (a counter the test reads). */
static void
fr_mark(const struct fr_args *a, const char *what)
{
	const char *dir = getenv("FAKE_RUNC_DIR");
	char path[4096];
	FILE *f;

	if (dir == NULL)
		return;
	snprintf(path, sizeof path, "%s/%s.%s", dir, a->id, what);
	f = fopen(path, "ae");
	if (f != NULL) {
		fprintf(f, "x\n");
		fclose(f);
	}
}

/* Write "pid\n" to path; -1 on error. */
static int
fr_write_pid(const char *path, pid_t pid)
{
	FILE *f = fopen(path, "we");

	if (f == NULL)
		return -1;
	fprintf(f, "%d\n", (int)pid);
	return fclose(f);
}

/* The pid recorded in R/ID/pid, or 0. */
static pid_t
fr_state_pid(const struct fr_args *a)
{
	char path[4096];
	int pid = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s/pid", a->root, a->id);
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/* Send payload with nfds descriptors (0: no control message at all). */
static int
fr_send(int sock, const char *payload, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov = {(void *)payload, strlen(payload)};
	struct msghdr m = {0};
	struct cmsghdr *cm;

	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&ctl, 0, sizeof ctl);
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0) {
		perror("fake_runc: sendmsg");
		return -1;
	}
	return 0;
}

/*
 * Fork the container process: a session leader on the pty slave (when master >= 0) that sleeps
 * until killed, or exits at once with exit_now. The console connection sock stays open in it
 * only with keep_sock (it does not exec: every other descriptor is closed by hand).
 */
static pid_t
fr_container(int master, bool exit_now, int sock, bool keep_sock)
{
	pid_t pid;
	int slave;

	pid = fork();
	if (pid != 0)
		return pid;
	/* First, while fd 1 is still the agent's capture pipe: its EOF means this is closed. */
	if (sock >= 0 && !keep_sock)
		close(sock);
	setsid();
	/* The master may be closed before anyone holds it: a hangup must not end it early. */
	signal(SIGHUP, SIG_IGN);
	if (master >= 0) {
		slave = open(ptsname(master), O_RDWR | O_NOCTTY);
		if (slave < 0)
			_exit(126);
		ioctl(slave, TIOCSCTTY, 0);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		close(slave);
		close(master);
	}
	if (exit_now)
		_exit(0);
	for (;;)
		pause();
}

/* `create`: state, container process, then the console behaviour of the mode. */
static int
fr_create(struct fr_args *a)
{
	char dir[4096], pidpath[4200], name[64] = "";
	int master = -1, sock = -1, fds[2], devnull;
	bool tty = a->console != NULL;
	pid_t pid;

	if (strcmp(a->mode, "fail") == 0) {
		fr_log_error(a, "fake: create failed before the console socket");
		return 1;
	}
	snprintf(dir, sizeof dir, "%s/%s", a->root, a->id);
	mkdir(a->root, 0700);
	if (a->exec && access(dir, F_OK) < 0) {
		fr_log_error(a, "fake: exec: container does not exist");
		return 1;
	}
	if (!a->exec && mkdir(dir, 0700) < 0) {
		fr_log_error(a, "fake: container exists");
		return 1;
	}
	if (tty) {
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
			return 1;
		snprintf(name, sizeof name, "%s", ptsname(master));
	}
	if (tty && strcmp(a->mode, "hang") != 0)
		sock = testlib_connect(a->console);
	if (tty && strcmp(a->mode, "hang") != 0 && sock < 0) {
		perror("fake_runc: console socket");
		return 1;
	}
	pid =
	    fr_container(master, strcmp(a->mode, "exit") == 0, sock, strcmp(a->mode, "hold") == 0);
	if (pid < 0)
		return 1;
	snprintf(pidpath, sizeof pidpath, "%s/pid", dir);
	if ((!a->exec && fr_write_pid(pidpath, pid) < 0) || fr_write_pid(a->pid_file, pid) < 0)
		return 1;
	if (!tty)
		return 0;
	if (strcmp(a->mode, "hang") == 0 || strcmp(a->mode, "hangconn") == 0) {
		for (;;)
			pause();
	}
	if (strcmp(a->mode, "ok") == 0 || strcmp(a->mode, "exit") == 0 ||
	    strcmp(a->mode, "failafter") == 0) {
		if (fr_send(sock, name, &master, 1) < 0)
			return 1;
	} else if (strcmp(a->mode, "nofd") == 0) {
		if (fr_send(sock, name, NULL, 0) < 0)
			return 1;
	} else if (strcmp(a->mode, "twofds") == 0) {
		fds[0] = fds[1] = master;
		if (fr_send(sock, name, fds, 2) < 0)
			return 1;
	} else if (strcmp(a->mode, "notty") == 0) {
		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull < 0 || fr_send(sock, "/dev/null", &devnull, 1) < 0)
			return 1;
	}
	/* close, hold: nothing sent. */
	if (strcmp(a->mode, "failafter") == 0) {
		fr_log_error(a, "fake: create failed after sending the terminal");
		return 1;
	}
	return 0;
}

/* `delete`: kill the container process, remove the state; runc's error when there is none. */
static int
fr_delete(struct fr_args *a)
{
	char path[4200];
	pid_t pid = fr_state_pid(a);

	fr_mark(a, "deleted");
	snprintf(path, sizeof path, "%s/%s/pid", a->root, a->id);
	if (access(path, F_OK) < 0) {
		snprintf(path, sizeof path, "fake: container %s does not exist", a->id);
		fr_log_error(a, path);
		return 1;
	}
	if (pid > 0)
		kill(pid, SIGKILL);
	unlink(path);
	snprintf(path, sizeof path, "%s/%s", a->root, a->id);
	return rmdir(path) < 0 ? 1 : 0;
}

static int fr_runtime_cmd(struct fr_args *a, int argc, char **argv);

/* A "CMD-hang" mode: true (and the mode becomes "ok") when it names this command. */
static bool
fr_hang_mode(struct fr_args *a)
{
	size_t n = strlen(a->cmd);
	bool hang;

	if (strstr(a->mode, "-hang") == NULL)
		return false;
	hang = strncmp(a->mode, a->cmd, n) == 0 && strcmp(a->mode + n, "-hang") == 0;
	snprintf(a->mode, sizeof a->mode, "ok");
	return hang;
}

/* The runtime role: parse runc's command line, act, then hang if the mode says so. */
static int
fr_runtime(int argc, char **argv)
{
	struct fr_args a = {0};
	bool hang;
	int i = 1, rc;

	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (strcmp(argv[i], "--root") == 0)
			a.root = argv[i + 1];
		else if (strcmp(argv[i], "--log") == 0)
			a.log = argv[i + 1];
	}
	if (i >= argc || a.root == NULL) {
		fprintf(stderr, "fake_runc: usage: --root R [--log L] CMD ...\n");
		return 2;
	}
	a.cmd = argv[i++];
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--console-socket") == 0 && i + 1 < argc)
			a.console = argv[++i];
		else if (strcmp(argv[i], "--pid-file") == 0 && i + 1 < argc)
			a.pid_file = argv[++i];
		else if ((strcmp(argv[i], "--bundle") == 0 || strcmp(argv[i], "--process") == 0) &&
			 i + 1 < argc)
			i++;
		else if (argv[i][0] != '-' && a.id == NULL)
			a.id = argv[i];
	}
	if (a.id == NULL) {
		fprintf(stderr, "fake_runc: %s: no container id\n", a.cmd);
		return 2;
	}
	a.exec = strcmp(a.cmd, "exec") == 0;
	fr_mode(&a);
	hang = fr_hang_mode(&a);
	rc = fr_runtime_cmd(&a, argc, argv);
	while (hang && rc == 0)
		pause();
	return rc;
}

/* One runtime command, its mode known. */
static int
fr_runtime_cmd(struct fr_args *a, int argc, char **argv)
{
	pid_t pid;

	if ((strcmp(a->cmd, "create") == 0 || a->exec) && a->pid_file != NULL)
		return fr_create(a);
	if (strcmp(a->cmd, "delete") == 0)
		return fr_delete(a);
	pid = fr_state_pid(a);
	if (pid == 0) {
		fr_log_error(a, "fake: container does not exist");
		return 1;
	}
	if (strcmp(a->cmd, "start") == 0)
		return 0;
	if (strcmp(a->cmd, "state") == 0) {
		printf("{\"id\":\"%s\",\"status\":\"created\",\"pid\":%d}\n", a->id, (int)pid);
		return 0;
	}
	if (strcmp(a->cmd, "kill") == 0)
		return kill(pid, argc > 0 ? atoi(argv[argc - 1]) : SIGTERM) < 0 ? 1 : 0;
	fprintf(stderr, "fake_runc: %s not scripted\n", a->cmd);
	return 1;
}

/* The client role: one Agent call, its code and message or payload printed. */
static int
fr_call(const char *sock, const char *method, const char *payload)
{
	struct rpc_client *c;
	struct endpoint ep;
	struct status st;
	json_t *req, *resp = NULL;
	char buf[4200], *s;
	int fd;

	snprintf(buf, sizeof buf, "uds:%s:1024", sock);
	if (endpoint_parse(buf, &ep, &st) < 0 || (fd = transport_connect(&ep, 5000, &st)) < 0) {
		fprintf(stderr, "fake_runc call: %s\n", st.msg);
		return 1;
	}
	req = json_loads(payload, 0, NULL);
	if (req == NULL) {
		close(fd);
		fprintf(stderr, "fake_runc call: payload is not JSON\n");
		return 1;
	}
	c = rpc_client_new(fd, 16 * 1024 * 1024);
	if (rpc_client_start_reader(c, &st) < 0) {
		fprintf(stderr, "fake_runc call: %s\n", st.msg);
		json_decref(req);
		rpc_client_free(c);
		return 1;
	}
	if (rpc_client_call(c, PROTOCOL_AGENT_SERVICE, method, req, 60000, &resp, &st) < 0) {
		printf("%s %s\n", status_code_name(st.code), st.msg);
	} else {
		s = json_dumps(resp, JSON_COMPACT);
		printf("OK %s\n", s != NULL ? s : "null");
		free(s);
	}
	json_decref(req);
	json_decref(resp);
	rpc_client_free(c);
	return 0;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "call") == 0)
		return fr_call(argv[2], argv[3], argv[4]);
	return fr_runtime(argc, argv);
}
