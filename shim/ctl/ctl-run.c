/*
 * ctl-run.c: `vmshimctl run`, a container from a command line with our own stdio attached.
 *
 * It does what a runtime does: makes the stdio FIFOs (mkfifo 0600) in a private temp dir, and
 * a bundle there too when none is given (config.json with process.args = ARGS), Creates, opens
 * the FIFOs, Starts, then pumps: our stdin into the stdin FIFO (our EOF closes it and sends
 * CloseIO) and the stdout / stderr FIFOs to our stdout / stderr, in one poll loop, until both
 * output FIFOs reach EOF. Then Wait, Delete, remove the temp dir, and exit with the process's
 * status. SIGINT / SIGTERM / SIGHUP received meanwhile are forwarded with Kill.
 *
 * FIFO opens that can never hang: the output FIFOs are opened O_RDONLY|O_NONBLOCK (before
 * Create, so the shim finds a reader whatever way it opens them), then made blocking; they are
 * read only when poll() says so, and poll reports no hang-up on a FIFO that has never had a
 * writer, so a reader that is early does not see a false EOF. The stdin FIFO is opened O_RDWR
 * after Create (an O_RDWR open of a FIFO never waits) and kept non-blocking, with at most one
 * buffer of our stdin pending, so a process that does not read its stdin cannot stall the
 * output. The temp dir and everything in it is ours and removed on every path out.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "msg.h"
#include "util.h"

#define RUN_BUF (64u * 1024)

struct run {
	struct ctl *ctl;
	const char *id;
	bool terminal;
	char *dir;		   /* our temp dir, removed at the end */
	char *bundle;		   /* given or dir/bundle */
	bool own_bundle;	   /* we wrote dir/bundle/config.json */
	char *fifo[3];		   /* dir/stdin, dir/stdout, dir/stderr ("" for none) */
	int in_fd, out_fd, err_fd; /* -1 when closed */
	bool created;
};

static volatile sig_atomic_t run_signal;

static void
run_on_signal(int sig)
{
	run_signal = sig;
}

/* Remove what we created under r->dir (files first, then the directories). */
static void
run_cleanup(struct run *r)
{
	cleanup_free char *cfg = NULL;
	int i;

	if (r->in_fd >= 0)
		close(r->in_fd);
	if (r->out_fd >= 0)
		close(r->out_fd);
	if (r->err_fd >= 0)
		close(r->err_fd);
	r->in_fd = r->out_fd = r->err_fd = -1;
	if (r->dir == NULL)
		return;
	for (i = 0; i < 3; i++)
		if (r->fifo[i] != NULL && r->fifo[i][0] != '\0')
			unlink(r->fifo[i]);
	if (r->own_bundle) {
		xasprintf(&cfg, "%s/config.json", r->bundle);
		unlink(cfg);
		rmdir(r->bundle);
	}
	rmdir(r->dir);
}

/* Write bundle/config.json: an OCI spec running args on the host's root, read-only. */
static int
run_write_bundle(struct run *r, char **args, int nargs)
{
	cleanup_json json_t *spec = NULL;
	cleanup_free char *cfg = NULL;

	xasprintf(&r->bundle, "%s/bundle", r->dir);
	if (mkdir(r->bundle, 0700) != 0) {
		fprintf(stderr, "vmshimctl: run: mkdir %s: %s\n", r->bundle, strerror(errno));
		return -1;
	}
	r->own_bundle = true;
	spec = json_pack("{s:s,s:o,s:{s:s,s:b},s:s}", "ociVersion", "1.0.2", "process",
	    ctl_process_spec(args, nargs, r->terminal), "root", "path", "/", "readonly", 1,
	    "hostname", r->id);
	xasprintf(&cfg, "%s/config.json", r->bundle);
	if (json_dump_file(spec, cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
		fprintf(stderr, "vmshimctl: run: write %s failed\n", cfg);
		return -1;
	}
	return 0;
}

/* Make the FIFOs and open the output ones for reading (non-blocking open, then blocking). */
static int
run_make_fifos(struct run *r)
{
	static const char *names[3] = {"stdin", "stdout", "stderr"};
	int i, fd;

	for (i = 0; i < 3; i++) {
		if (i == 2 && r->terminal) {
			r->fifo[i] = xstrdup(""); /* a terminal merges stderr into stdout */
			continue;
		}
		xasprintf(&r->fifo[i], "%s/%s", r->dir, names[i]);
		if (mkfifo(r->fifo[i], 0600) != 0) {
			fprintf(
			    stderr, "vmshimctl: run: mkfifo %s: %s\n", r->fifo[i], strerror(errno));
			return -1;
		}
		if (i == 0)
			continue;
		fd = open(r->fifo[i], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 || fd_set_nonblock(fd, false) != 0) {
			fprintf(
			    stderr, "vmshimctl: run: open %s: %s\n", r->fifo[i], strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (i == 1)
			r->out_fd = fd;
		else
			r->err_fd = fd;
	}
	return 0;
}

/* Copy what a FIFO has to our fd; false at EOF or on error. */
static bool
run_copy_out(int from, int to)
{
	char buf[RUN_BUF];
	ssize_t n = read(from, buf, sizeof buf);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	if (write_all(to, buf, (size_t)n) != 0)
		return true; /* our reader went away: keep draining so the process is not stuck */
	return true;
}

/* Our stdin is done: close the FIFO's write end and tell the shim (CloseIO). */
static void
run_close_stdin(struct run *r)
{
	if (r->in_fd < 0)
		return;
	close(r->in_fd);
	r->in_fd = -1;
	ctl_task(r->ctl, "CloseIO",
	    json_pack("{s:s,s:s,s:b}", "id", r->id, "exec_id", "", "stdin", 1), r->ctl->timeout_ms,
	    NULL);
}

/* Forward a signal we received to the process. */
static void
run_forward_signal(struct run *r, int sig)
{
	ctl_task(r->ctl, "Kill",
	    json_pack("{s:s,s:s,s:i,s:b}", "id", r->id, "exec_id", "", "signal", sig, "all", 0),
	    r->ctl->timeout_ms, NULL);
}

/* The poll loop: stdin to the FIFO, both output FIFOs to ours, until both reach EOF. */
static void
run_pump(struct run *r)
{
	char inbuf[RUN_BUF];
	size_t in_have = 0, in_off = 0;
	bool stdin_open = true;
	struct pollfd pfd[4];
	ssize_t n;
	int sig;

	while (r->out_fd >= 0 || r->err_fd >= 0) {
		if ((sig = run_signal) != 0) {
			run_signal = 0;
			run_forward_signal(r, sig);
		}
		pfd[0].fd = stdin_open && in_have == 0 && r->in_fd >= 0 ? STDIN_FILENO : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = in_have > 0 ? r->in_fd : -1;
		pfd[1].events = POLLOUT;
		pfd[2].fd = r->out_fd;
		pfd[2].events = POLLIN;
		pfd[3].fd = r->err_fd;
		pfd[3].events = POLLIN;
		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "vmshimctl: run: poll: %s\n", strerror(errno));
			return;
		}
		if (pfd[2].revents != 0 && !run_copy_out(r->out_fd, STDOUT_FILENO)) {
			close(r->out_fd);
			r->out_fd = -1;
		}
		if (pfd[3].revents != 0 && !run_copy_out(r->err_fd, STDERR_FILENO)) {
			close(r->err_fd);
			r->err_fd = -1;
		}
		if (pfd[0].revents != 0) {
			n = read(STDIN_FILENO, inbuf, sizeof inbuf);
			if (n > 0) {
				in_have = (size_t)n;
				in_off = 0;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				stdin_open = false;
				run_close_stdin(r);
			}
		}
		if (pfd[1].revents != 0) {
			n = write(r->in_fd, inbuf + in_off, in_have - in_off);
			if (n > 0) {
				in_off += (size_t)n;
				if (in_off == in_have)
					in_have = in_off = 0;
			} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
				stdin_open = false; /* nobody will read it any more */
				in_have = 0;
				run_close_stdin(r);
			}
		}
	}
}

/* Parse run's arguments: [--id ID] [--bundle DIR] [--terminal] -- ARGS. */
static void
run_parse(struct run *r, int argc, char **argv, char ***args, int *nargs, const char **bundle)
{
	static const struct option opts[] = {
	    {"id", required_argument, NULL, 'i'},
	    {"bundle", required_argument, NULL, 'b'},
	    {"terminal", no_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			r->id = optarg;
			break;
		case 'b':
			*bundle = optarg;
			break;
		case 't':
			r->terminal = true;
			break;
		default:
			ctl_usage_error("run: unknown or misused option %s", argv[optind - 1]);
		}
	}
	*args = argv + optind;
	*nargs = argc - optind;
	if (*bundle == NULL && *nargs == 0)
		ctl_usage_error("run: give ARGS after --, or --bundle DIR");
	if (*bundle != NULL && *nargs > 0)
		ctl_usage_error("run: ARGS and --bundle exclude each other");
}

int
ctl_run(struct ctl *ctl, int argc, char **argv)
{
	struct run r = {.ctl = ctl, .in_fd = -1, .out_fd = -1, .err_fd = -1};
	cleanup_json json_t *resp = NULL;
	const char *bundle = NULL, *tmp = getenv("TMPDIR");
	char idbuf[32], **args;
	struct sigaction sa;
	int nargs, status = CTL_EXIT_FAIL, fd;

	run_parse(&r, argc, argv, &args, &nargs, &bundle);
	if (r.id == NULL) {
		snprintf(idbuf, sizeof idbuf, "run-%ld", (long)getpid());
		r.id = idbuf;
	}
	ctl_client(ctl); /* connect before making anything that needs cleaning up */
	xasprintf(&r.dir, "%s/vmshimctl-XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(r.dir) == NULL) {
		fprintf(stderr, "vmshimctl: run: mkdtemp %s: %s\n", r.dir, strerror(errno));
		free(r.dir);
		return CTL_EXIT_FAIL;
	}
	if (bundle != NULL)
		r.bundle = ctl_abspath(bundle);
	else if (run_write_bundle(&r, args, nargs) != 0)
		goto out;
	if (run_make_fifos(&r) != 0)
		goto out;

	if (ctl_task(ctl, "Create",
		json_pack("{s:s,s:s,s:[],s:b,s:s,s:s,s:s}", "id", r.id, "bundle", r.bundle,
		    "rootfs", "terminal", r.terminal, "stdin", r.fifo[0], "stdout", r.fifo[1],
		    "stderr", r.fifo[2]),
		ctl->timeout_ms, NULL) != 0)
		goto out;
	r.created = true;
	fd = open(r.fifo[0], O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "vmshimctl: run: open %s: %s\n", r.fifo[0], strerror(errno));
		goto out;
	}
	r.in_fd = fd;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = run_on_signal; /* no SA_RESTART: poll returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	if (ctl_task(ctl, "Start", json_pack("{s:s,s:s}", "id", r.id, "exec_id", ""),
		ctl->timeout_ms, NULL) != 0)
		goto out;
	run_pump(&r);
	if (ctl_task(ctl, "Wait", json_pack("{s:s,s:s}", "id", r.id, "exec_id", ""), 0, &resp) ==
	    0) {
		json_int_t es = json_integer_value(json_object_get(resp, "exit_status"));

		status = es < 0 || es > 255 ? 255 : (int)es;
	}
out:
	run_cleanup(&r);
	if (r.created &&
	    ctl_task(ctl, "Delete", json_pack("{s:s,s:s}", "id", r.id, "exec_id", ""),
		ctl->timeout_ms, NULL) != 0 &&
	    status == CTL_EXIT_OK)
		status = CTL_EXIT_FAIL;
	free(r.dir);
	free(r.bundle);
	for (int i = 0; i < 3; i++)
		free(r.fifo[i]);
	return status;
}
