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

#include "forward.h"
#include "io.h"
#include "shim.h"
#include "util.h"

#define START_READY_TIMEOUT_MS	 15000
#define START_OPTIONS_MAX	 (64 * 1024)
#define START_OPTIONS_TIMEOUT_MS 5000

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
	bool json; /* delete: print the DeleteResponse as JSON */
	const char *cmd;

	/* Derived by main(): the bundle (-bundle, or containerd's working directory) and group. */
	char *bundle_dir;
	char *group;
	char *options_config; /* config_path from start's runtime options */
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
	    "  delete  clean up after a dead shim and print a protobuf DeleteResponse\n"
	    "          (-json: as JSON)\n"
	    "\n"
	    "  -config FILE  configuration (default " CONFIG_DEFAULT_PATH ")\n"
	    "  -socket PATH  control socket (default $XDG_RUNTIME_DIR/vmshim/NS/GROUP.sock,\n"
	    "                or /run/vmshim/NS/GROUP.sock as root; GROUP is the bundle's\n"
	    "                io.vmshim.group or io.kubernetes.cri.sandbox-id annotation, else ID)\n"
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
		if (strcmp(name, "debug") == 0 || strcmp(name, "json") == 0) {
			bool *flag = name[0] == 'd' ? &o->debug : &o->json;

			if (val != NULL && strcmp(val, "true") != 0 && strcmp(val, "false") != 0)
				main_die(2, "-%s takes no value", name);
			*flag = val == NULL || strcmp(val, "true") == 0;
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

/* The socket, pid file and state directory paths of this NS/GROUP (or of -socket). */
static void
main_paths(const struct main_opts *o, char **sock, char **pidf, char **state)
{
	const char *dir, *base;
	size_t n;

	if (o->socket != NULL) {
		*sock = xstrdup(o->socket);
	} else {
		if (o->group == NULL || *o->group == '\0')
			main_die(2, "%s: -id (or -socket) is required", o->cmd);
		if (strchr(o->group, '/') != NULL || strchr(o->ns, '/') != NULL ||
		    strcmp(o->group, "..") == 0 || strcmp(o->ns, "..") == 0 || o->ns[0] == '.')
			main_die(2, "%s: namespace and id must not contain '/'", o->cmd);
		if (geteuid() == 0) {
			dir = "/run";
		} else {
			dir = getenv("XDG_RUNTIME_DIR");
			if (dir == NULL || *dir == '\0')
				main_die(1, "XDG_RUNTIME_DIR is not set: pass -socket PATH");
		}
		xasprintf(sock, "%s/vmshim/%s/%s.sock", dir, o->ns, o->group);
	}
	if (strlen(*sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		main_die(2, "socket path %s is too long", *sock);
	base = *sock;
	n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".sock") == 0)
		n -= 5;
	xasprintf(pidf, "%.*s.pid", (int)n, base);
	xasprintf(state, "%.*s.d", (int)n, base);
	if (strlen(*state) + sizeof "/agent.sock" > sizeof(((struct sockaddr_un *)0)->sun_path))
		main_die(
		    2, "socket path %s is too long for the local VM's socket beside it", *sock);
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

/* -config, else the runtime options' config_path, else the default (which may be missing). */
static void
main_load_config(const struct main_opts *o)
{
	const char *path = o->config ? o->config : o->options_config;
	bool must_exist = path != NULL;
	cleanup_free char *src = NULL;
	struct status st;

	if (path == NULL)
		path = CONFIG_DEFAULT_PATH;
	xasprintf(&src, "config %s", path);
	config_defaults(&shim.cfg);
	if (config_load(&shim.cfg, path, must_exist, &st) < 0 ||
	    config_apply_bundle(&shim.cfg, o->bundle_dir, &st) < 0 ||
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
	/* The local VM starts before any thread and before seccomp, and answers before "R". */
	if ((shim.cfg.vm_launch == VM_LAUNCH_LOCAL &&
		vm_local_start(&shim.cfg, shim.state_dir, &st) < 0) ||
	    (shim.cfg.vm_launch == VM_LAUNCH_QEMU &&
		vm_qemu_start(&shim.cfg, shim.state_dir, &st) < 0)) {
		close(lfd);
		unlink(shim.socket_path);
		unlink(shim.pid_path);
		goto fail;
	}
	/* containerd's own ttrpc socket, where every event is also forwarded (forward.h). */
	forward_configure(getenv("TTRPC_ADDRESS"), o->ns);
	/* loop_run reports "R" on ready_fd once start-up fully succeeded (and closes it). */
	r = loop_run(lfd, ready_fd, &st);
	close(lfd);
	unlink(shim.socket_path);
	vm_local_stop();
	vm_qemu_stop();
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

/*
 * Point stdin at /dev/null and stdout/stderr at the log file, else at the bundle's `log` FIFO
 * (containerd reads it), else at /dev/null. The FIFO is opened non-blocking: without a reader
 * the open fails at once (ENXIO) instead of hanging, and a reader that stops reading costs
 * log lines (EAGAIN), never the loop thread.
 */
static void
main_redirect_stdio(const char *log, const char *bundle)
{
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = -1;
	struct stat sb;
	char *fifo = NULL;

	if (log != NULL && strcmp(log, "-") != 0) {
		out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	} else if (log == NULL && bundle != NULL) {
		xasprintf(&fifo, "%s/log", bundle);
		if (stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode))
			out = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		free(fifo);
	}
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

/*
 * The answer of `start`: write the address to the bundle's `address` file (containerd finds
 * the shim there after a restart), then print it, and nothing else, on stdout.
 */
static int
main_start_answer(const struct main_opts *o)
{
	cleanup_free char *addr = NULL;
	struct status st;

	xasprintf(&addr, "unix://%s", shim.socket_path);
	if (o->bundle_dir != NULL && containerd_write_address(o->bundle_dir, addr, &st) < 0)
		main_die(1, "start: address file: %s", st.msg);
	printf("%s\n", addr);
	return 0;
}

static int
main_start(struct main_opts *o)
{
	char buf[STATUS_MSG_MAX + 2];
	int p[2], status;
	int64_t ready_ms;
	pid_t child;
	ssize_t n;
	size_t have = 0;

	if (main_socket_answers(shim.socket_path))
		return main_start_answer(o);
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
		main_redirect_stdio(o->log, o->bundle_dir);
		if (o->log != NULL && strcmp(o->log, "-") == 0)
			o->log = NULL;
		exit(main_serve(o, p[1]));
	}
	close(p[1]);
	waitpid(child, &status, 0);
	/* A launched VM has vm.boot_timeout_ms of its own to answer (and then reports why not). */
	ready_ms = START_READY_TIMEOUT_MS;
	if (shim.cfg.vm_launch == VM_LAUNCH_LOCAL || shim.cfg.vm_launch == VM_LAUNCH_QEMU)
		ready_ms += (int64_t)shim.cfg.boot_timeout_ms;
	if (fd_wait(p[0], POLLIN, time_mono_ms() + ready_ms) <= 0)
		main_die(
		    1, "start: the shim did not become ready within %lld ms", (long long)ready_ms);
	while (have < sizeof buf - 1 && (n = read(p[0], buf + have, sizeof buf - 1 - have)) > 0)
		have += (size_t)n;
	buf[have] = '\0';
	close(p[0]);
	if (have > 0 && buf[0] == 'R')
		return main_start_answer(o);
	/* Lost a race with another `start` of the same group: its address is the answer. */
	if (main_socket_answers(shim.socket_path))
		return main_start_answer(o);
	if (have > 1 && buf[0] == 'E')
		main_die(1, "%s", buf + 1);
	main_die(1, "start: the shim exited during start-up (see its log)");
}

/*
 * Clean up after a dead shim. The pid in the pid file is killed only if that very process
 * holds the file's lock (main_write_pidfile): a stale file whose pid now belongs to someone
 * else (pid reuse) kills nothing. The shim of a group other than the container's own id that
 * still answers serves the group's other containers and is left alone. Then the local VM's
 * leftovers go (vm_local_cleanup: the agent, the containers it ran, the state directory), and the
 * DeleteResponse is printed: protobuf (what containerd reads) or, with -json, JSON.
 */
static int
main_delete(const struct main_opts *o, const char *sock, const char *pidf, const char *state)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char buf[64], ts[TIME_RFC3339_LEN];
	cleanup_close int fd = -1;
	cleanup_free uint8_t *pb = NULL;
	struct timespec now;
	ssize_t n;
	size_t len;
	long pid;

	/* Another container's shim (a group's) that still answers serves the others: keep it. */
	if (o->group != NULL && o->id != NULL && strcmp(o->group, o->id) != 0 &&
	    main_socket_answers(sock)) {
		fprintf(stderr,
		    "vmshim: delete: the shim of group %s still answers on %s: left running\n",
		    o->group, sock);
		goto answer;
	}
	fd = util_open_nonblock(pidf, O_RDONLY, S_IFREG, NULL);
	if (fd >= 0 && (n = read(fd, buf, sizeof buf - 1)) > 0) {
		buf[n] = '\0';
		pid = strtol(buf, NULL, 10);
		if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
			fprintf(
			    stderr, "vmshim: delete: pid file %s is stale (not locked)\n", pidf);
		else if (pid > 1 && fl.l_pid == (pid_t)pid && kill((pid_t)pid, SIGKILL) == 0)
			fprintf(stderr, "vmshim: delete: killed leftover shim pid %ld\n", pid);
	}
	vm_qemu_cleanup(state);
	vm_local_cleanup(state);
	if (unlink(sock) < 0 && errno != ENOENT)
		main_die(1, "delete: %s: %s", sock, strerror(errno));
	if (unlink(pidf) < 0 && errno != ENOENT)
		main_die(1, "delete: %s: %s", pidf, strerror(errno));
answer:
	clock_gettime(CLOCK_REALTIME, &now);
	if (o->json) {
		time_rfc3339(&now, ts);
		printf("{\"pid\":0,\"exit_status\":137,\"exited_at\":\"%s\"}\n", ts);
		return 0;
	}
	len = containerd_delete_response(0, 137, &now, &pb);
	if (fwrite(pb, 1, len, stdout) != len || fflush(stdout) != 0)
		main_die(1, "delete: stdout: %s", strerror(errno));
	return 0;
}

/*
 * start's stdin: containerd's runtime options (a protobuf Any), or nothing. Only read when
 * containerd is the caller (it passes -address), never from a terminal, and within
 * START_OPTIONS_TIMEOUT_MS: containerd writes the options and closes the pipe at once; a
 * caller that leaves an empty pipe open costs that wait and means no options.
 */
static void
main_read_options(struct main_opts *o)
{
	cleanup_free uint8_t *buf = NULL;
	int64_t deadline = time_mono_ms() + START_OPTIONS_TIMEOUT_MS;
	struct status st;
	size_t have = 0;
	ssize_t n;
	int r;

	if (o->address == NULL || isatty(STDIN_FILENO))
		return;
	buf = xmalloc(START_OPTIONS_MAX + 1);
	while (have <= START_OPTIONS_MAX) {
		r = fd_wait(STDIN_FILENO, POLLIN, deadline);
		if (r == 0 && have == 0)
			return; /* an empty pipe left open: no options */
		if (r == 0)
			main_die(1, "start: no end of the runtime options on stdin within %d ms",
			    START_OPTIONS_TIMEOUT_MS);
		if (r < 0)
			return; /* stdin closed or not pollable: no options */
		n = read(STDIN_FILENO, buf + have, START_OPTIONS_MAX + 1 - have);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			main_die(1, "start: reading runtime options on stdin: %s", strerror(errno));
		}
		have += (size_t)n;
	}
	if (containerd_options_config_path(buf, have, &o->options_config, &st) < 0)
		main_die(1, "start: %s", st.msg);
}

int
main(int argc, char **argv)
{
	struct main_opts o = {0};
	char *sock = NULL, *pidf = NULL, *state = NULL, cwd[4096];
	struct status st;
	int r;

	main_parse(argc, argv, &o);
	/* containerd runs `start` in the bundle directory without -bundle. */
	if (o.bundle != NULL)
		o.bundle_dir = xstrdup(o.bundle);
	else if (access("config.json", F_OK) == 0 && getcwd(cwd, sizeof cwd) != NULL)
		o.bundle_dir = xstrdup(cwd);
	if (strcmp(o.cmd, "start") == 0)
		main_read_options(&o);
	if (o.socket == NULL && containerd_group(o.bundle_dir, o.id, &o.group, &st) < 0)
		main_die(st.code == ST_INVALID_ARGUMENT && o.id == NULL ? 2 : 1, "%s: %s", o.cmd,
		    st.msg);
	main_paths(&o, &sock, &pidf, &state);
	shim.socket_path = sock;
	shim.pid_path = pidf;
	shim.state_dir = state;
	if (strcmp(o.cmd, "delete") == 0) {
		r = main_delete(&o, sock, pidf, state);
	} else {
		main_load_config(&o);
		if (strcmp(o.cmd, "start") == 0)
			r = main_start(&o);
		else
			r = main_serve(&o, -1);
	}
	free(sock);
	free(pidf);
	free(state);
	free(o.bundle_dir);
	free(o.group);
	free(o.options_config);
	return r;
}
