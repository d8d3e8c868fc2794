/*
 * main.c: vmshim's command line (docs/CONTRACT.md 2): start, delete, serve.
 *
 * Runs on the main thread before any other thread exists. It parses the containerd-style
 * flags (one or two dashes, "-flag value" or "-flag=value"), loads the configuration (so a
 * bad config fails `start` in the foreground with a clear line), and then either serves in
 * the foreground, daemonizes (double fork + setsid; the grandchild reports readiness or its
 * start-up error through a CLOEXEC pipe once start-up has fully succeeded (loop_run, just
 * before the loop dispatches), and only then does the
 * parent print the address), or cleans up after a dead shim. Only this file prints to
 * stdout/stderr and chooses the exit status: 0 ok, 1 runtime failure, 2 bad usage.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "shim.h"
#include "util.h"

#define START_READY_TIMEOUT_MS 15000

static int main_pid_fd = -1; /* the pid file, locked while the daemon runs */

struct main_opts {
	const char *ns;
	const char *id;
	const char *bundle;
	const char *address;
	const char *config;
	const char *socket;
	const char *log;
	bool debug;
	const char *cmd;
};

static void
main_usage(FILE *f)
{
	fprintf(f,
	    "usage: vmshim [-namespace NS] [-id ID] [-bundle DIR] [-address ADDR] [-config FILE]\n"
	    "              [-socket PATH] [-debug] [-log FILE] start | delete | serve\n"
	    "       vmshim --version | --help\n"
	    "\n"
	    "  start   start (or find) the shim of group ID, print its address unix:///PATH\n"
	    "  serve   run the shim in the foreground\n"
	    "  delete  clean up after a dead shim and print a DeleteResponse as JSON\n"
	    "\n"
	    "  -config FILE  configuration (default " CONFIG_DEFAULT_PATH ")\n"
	    "  -socket PATH  control socket (default $XDG_RUNTIME_DIR/vmshim/NS/ID.sock,\n"
	    "                or /run/vmshim/NS/ID.sock as root)\n"
	    "  -log FILE     log file (JSON lines); -debug logs at debug level\n");
}

static void __attribute__((noreturn, format(printf, 2, 3))) main_die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("vmshim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* Parse argv; bad usage exits 2. */
static void
main_parse(int argc, char **argv, struct main_opts *o)
{
	static const char *const valued[] = {
	    "namespace", "id", "bundle", "address", "config", "socket", "log", "publish-binary"};
	const char **slots[] = {
	    &o->ns, &o->id, &o->bundle, &o->address, &o->config, &o->socket, &o->log, NULL};

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		char name[64];
		size_t n;
		bool found = false;

		if (a[0] != '-' || a[1] == '\0') {
			if (o->cmd != NULL)
				main_die(2, "unexpected argument \"%s\" (see vmshim --help)", a);
			o->cmd = a;
			continue;
		}
		a += (a[1] == '-') ? 2 : 1;
		n = strcspn(a, "=");
		if (n >= sizeof name)
			main_die(2, "unknown flag -%s (see vmshim --help)", a);
		memcpy(name, a, n);
		name[n] = '\0';
		if (a[n] == '=')
			val = a + n + 1;
		if (strcmp(name, "version") == 0) {
			printf("vmshim %s\n", SHIM_VERSION);
			exit(0);
		}
		if (strcmp(name, "help") == 0 || strcmp(name, "h") == 0) {
			main_usage(stdout);
			exit(0);
		}
		if (strcmp(name, "debug") == 0) {
			if (val != NULL && strcmp(val, "true") != 0 && strcmp(val, "false") != 0)
				main_die(2, "-debug takes no value");
			o->debug = val == NULL || strcmp(val, "true") == 0;
			continue;
		}
		for (size_t k = 0; k < ARRAY_SIZE(valued); k++) {
			if (strcmp(name, valued[k]) != 0)
				continue;
			if (val == NULL) {
				if (i + 1 >= argc)
					main_die(2, "flag -%s needs a value", name);
				val = argv[++i];
			}
			if (slots[k] != NULL)
				*slots[k] = val;
			found = true;
			break;
		}
		if (!found)
			main_die(2, "unknown flag -%s (see vmshim --help)", name);
	}
	if (o->cmd == NULL)
		main_die(2, "missing command: start, delete or serve (see vmshim --help)");
	if (strcmp(o->cmd, "start") != 0 && strcmp(o->cmd, "delete") != 0 &&
	    strcmp(o->cmd, "serve") != 0)
		main_die(2, "unknown command \"%s\": expected start, delete or serve", o->cmd);
	if (o->ns == NULL)
		o->ns = "default";
}

/* The socket and pid file paths of this NS/ID (or of -socket). */
static void
main_paths(const struct main_opts *o, char **sock, char **pidf)
{
	const char *dir, *base;
	size_t n;

	if (o->socket != NULL) {
		*sock = xstrdup(o->socket);
	} else {
		if (o->id == NULL || *o->id == '\0')
			main_die(2, "%s: -id (or -socket) is required", o->cmd);
		if (strchr(o->id, '/') != NULL || strchr(o->ns, '/') != NULL ||
		    strcmp(o->id, "..") == 0 || strcmp(o->ns, "..") == 0)
			main_die(2, "%s: namespace and id must not contain '/'", o->cmd);
		if (geteuid() == 0) {
			dir = "/run";
		} else {
			dir = getenv("XDG_RUNTIME_DIR");
			if (dir == NULL || *dir == '\0')
				main_die(1, "XDG_RUNTIME_DIR is not set: pass -socket PATH");
		}
		xasprintf(sock, "%s/vmshim/%s/%s.sock", dir, o->ns, o->id);
	}
	if (strlen(*sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		main_die(2, "socket path %s is too long", *sock);
	base = *sock;
	n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".sock") == 0)
		xasprintf(pidf, "%.*s.pid", (int)(n - 5), base);
	else
		xasprintf(pidf, "%s.pid", base);
}

/* Does a server accept connections on path right now? */
static bool
main_socket_answers(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	return connect(fd, (struct sockaddr *)&un, sizeof un) == 0;
}

static void
main_load_config(const struct main_opts *o)
{
	const char *path = o->config ? o->config : CONFIG_DEFAULT_PATH;
	const char *bundle = o->bundle;
	cleanup_free char *src = NULL;
	char cwd[4096];
	struct status st;

	/* containerd runs `shim start` in the bundle directory without -bundle. */
	if (bundle == NULL && access("config.json", F_OK) == 0 && getcwd(cwd, sizeof cwd) != NULL)
		bundle = cwd;
	xasprintf(&src, "config %s", path);
	config_defaults(&shim.cfg);
	if (config_load(&shim.cfg, path, o->config != NULL, &st) < 0 ||
	    config_apply_bundle(&shim.cfg, bundle, &st) < 0 ||
	    config_endpoints(&shim.cfg, src, &st) < 0)
		main_die(1, "%s", st.msg);
	if (o->debug)
		shim.cfg.log_level = LOG_DEBUG;
}

/*
 * Write our pid and hold a write lock (fcntl record lock) on the pid file for the daemon's
 * lifetime, so `delete` can tell a live shim (the lock's holder is the pid in the file) from a
 * stale file whose pid was reused. The descriptor (main_pid_fd) stays open until main_serve
 * has removed the file.
 */
static int
main_write_pidfile(const char *path, struct status *st)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char buf[32];
	cleanup_close int fd = -1;
	int n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return status_errno(st, ST_FAILED_PRECONDITION, errno, "pid file %s", path);
	if (fcntl(fd, F_SETLK, &fl) < 0)
		return status_errno(st, ST_FAILED_PRECONDITION, errno, "pid file %s: lock", path);
	n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (write_all(fd, buf, (size_t)n) < 0)
		return status_errno(st, ST_FAILED_PRECONDITION, errno, "pid file %s", path);
	main_pid_fd = steal_fd(&fd);
	return 0;
}

/* Report to `start`'s parent: "R" ready, or "E" and the error line. */
static void
main_report(int fd, const char *what)
{
	if (fd >= 0) {
		if (write_all(fd, what, strlen(what)) < 0) {
			/* The parent is gone; nothing to tell. */
		}
		close(fd);
	}
}

/*
 * Test-only knobs from the environment, each logged when in effect (docs/RELIABILITY.md):
 * VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS shortens the 30 s half-closed stream timeout.
 */
static void
main_test_overrides(void)
{
	const char *v = getenv("VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS");
	uint32_t ms;

	if (v == NULL)
		return;
	if (parse_u32(v, &ms) < 0 || ms == 0 || ms > INT32_MAX) {
		log_warn(
		    "ignoring VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS=%s: not a positive integer", v);
		return;
	}
	io_set_half_closed_timeout_ms((int)ms);
	log_warn("test override: half-closed stream timeout %u ms "
		 "(VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS)",
	    ms);
}

/* The daemon proper: listen, write the pid file, report readiness, run the loop. */
static int
main_serve(const struct main_opts *o, int ready_fd)
{
	struct status st;
	char err[STATUS_MSG_MAX + 2];
	int lfd, r;

	signal(SIGPIPE, SIG_IGN);
	shim.pid = getpid();
	if (log_open(o->log, &st) < 0)
		goto fail;
	log_set_level(shim.cfg.log_level);
	main_test_overrides();
	lfd = transport_listen_unix(shim.socket_path, 0600, 512, &st);
	if (lfd < 0)
		goto fail;
	if (main_write_pidfile(shim.pid_path, &st) < 0) {
		close(lfd);
		unlink(shim.socket_path);
		goto fail;
	}
	/* loop_run reports "R" on ready_fd once start-up fully succeeded (and closes it). */
	r = loop_run(lfd, ready_fd, &st);
	close(lfd);
	unlink(shim.socket_path);
	unlink(shim.pid_path);
	close(main_pid_fd); /* removed first, then unlocked */
	main_pid_fd = -1;
	config_free(&shim.cfg);
	if (r < 0) {
		log_error("%s", st.msg);
		snprintf(err, sizeof err, "E%s", st.msg);
		main_report(ready_fd, err);
		fprintf(stderr, "vmshim: %s\n", st.msg);
	}
	log_close(); /* every thread is joined: the log's descriptor is the last one of ours */
	return r < 0 ? 1 : 0;
fail:
	log_error("%s", st.msg);
	snprintf(err, sizeof err, "E%s", st.msg);
	main_report(ready_fd, err);
	fprintf(stderr, "vmshim: %s\n", st.msg);
	return 1;
}

/* Point stdin at /dev/null and stdout/stderr at the log file (or /dev/null). */
static void
main_redirect_stdio(const char *log)
{
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = -1;

	if (log != NULL && strcmp(log, "-") != 0)
		out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (out < 0)
		out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (in < 0 || out < 0)
		_exit(1);
	dup2(in, STDIN_FILENO);
	dup2(out, STDOUT_FILENO);
	dup2(out, STDERR_FILENO);
	close(in);
	close(out);
}

static int
main_start(struct main_opts *o)
{
	char buf[STATUS_MSG_MAX + 2];
	int p[2], status;
	pid_t child;
	ssize_t n;
	size_t have = 0;

	if (main_socket_answers(shim.socket_path)) {
		printf("unix://%s\n", shim.socket_path);
		return 0;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		main_die(1, "start: pipe: %s", strerror(errno));
	fflush(stdout);
	child = fork();
	if (child < 0)
		main_die(1, "start: fork: %s", strerror(errno));
	if (child == 0) {
		close(p[0]);
		if (setsid() < 0)
			_exit(1);
		child = fork();
		if (child < 0)
			_exit(1);
		if (child > 0)
			_exit(0);
		main_redirect_stdio(o->log);
		if (o->log != NULL && strcmp(o->log, "-") == 0)
			o->log = NULL;
		exit(main_serve(o, p[1]));
	}
	close(p[1]);
	waitpid(child, &status, 0);
	if (fd_wait(p[0], POLLIN, time_mono_ms() + START_READY_TIMEOUT_MS) <= 0)
		main_die(
		    1, "start: the shim did not become ready within %d ms", START_READY_TIMEOUT_MS);
	while (have < sizeof buf - 1 && (n = read(p[0], buf + have, sizeof buf - 1 - have)) > 0)
		have += (size_t)n;
	buf[have] = '\0';
	close(p[0]);
	if (have > 0 && buf[0] == 'R') {
		printf("unix://%s\n", shim.socket_path);
		return 0;
	}
	/* Lost a race with another `start` of the same group: its address is the answer. */
	if (main_socket_answers(shim.socket_path)) {
		printf("unix://%s\n", shim.socket_path);
		return 0;
	}
	if (have > 1 && buf[0] == 'E')
		main_die(1, "%s", buf + 1);
	main_die(1, "start: the shim exited during start-up (see its log)");
}

/*
 * Clean up after a dead shim. The pid in the pid file is killed only if that very process
 * holds the file's lock (main_write_pidfile): a stale file whose pid now belongs to someone
 * else (pid reuse) kills nothing.
 */
static int
main_delete(const char *sock, const char *pidf)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char buf[64], ts[TIME_RFC3339_LEN];
	cleanup_close int fd = util_open_nonblock(pidf, O_RDONLY, S_IFREG, NULL);
	ssize_t n;
	long pid;

	if (fd >= 0 && (n = read(fd, buf, sizeof buf - 1)) > 0) {
		buf[n] = '\0';
		pid = strtol(buf, NULL, 10);
		if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
			fprintf(
			    stderr, "vmshim: delete: pid file %s is stale (not locked)\n", pidf);
		else if (pid > 1 && fl.l_pid == (pid_t)pid && kill((pid_t)pid, SIGKILL) == 0)
			fprintf(stderr, "vmshim: delete: killed leftover shim pid %ld\n", pid);
	}
	if (unlink(sock) < 0 && errno != ENOENT)
		main_die(1, "delete: %s: %s", sock, strerror(errno));
	if (unlink(pidf) < 0 && errno != ENOENT)
		main_die(1, "delete: %s: %s", pidf, strerror(errno));
	time_rfc3339_now(ts);
	printf("{\"pid\":0,\"exit_status\":137,\"exited_at\":\"%s\"}\n", ts);
	return 0;
}

int
main(int argc, char **argv)
{
	struct main_opts o = {0};
	char *sock = NULL, *pidf = NULL;
	int r;

	main_parse(argc, argv, &o);
	main_paths(&o, &sock, &pidf);
	shim.socket_path = sock;
	shim.pid_path = pidf;
	if (strcmp(o.cmd, "delete") == 0) {
		r = main_delete(sock, pidf);
	} else {
		main_load_config(&o);
		if (strcmp(o.cmd, "start") == 0)
			r = main_start(&o);
		else
			r = main_serve(&o, -1);
	}
	free(sock);
	free(pidf);
	return r;
}
