/*
 * proc-helper.c: helper children (runc, mount): forked, their output captured, reaped.
 *
 * Runs on the loop thread. Helpers are tracked in a list owned here; their stdout/stderr are
 * captured (at most PROC_HELPER_OUTPUT_MAX bytes) through a pipe read by the loop, and their
 * callback runs once both the exit status (proc-reap.c hands it in) and the pipe's EOF
 * arrived; then the helper is freed. In the child, only stdio (and an optional fd 3) survive.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "log.h"
#include "proc.h"
#include "util.h"

#define PROC_HELPER_OUTPUT_MAX (64 * 1024)

struct proc_helper {
	LIST_ENTRY(proc_helper) entry;
	pid_t pid;
	int out_fd;
	struct event *ev;
	struct evbuffer *out;
	bool reaped;
	bool eof;
	int wstatus;
	proc_helper_cb cb;
	void *arg;
};

static LIST_HEAD(, proc_helper) proc_helpers = LIST_HEAD_INITIALIZER(proc_helpers);

/* Free a helper whose callback ran. */
static void
proc_helper_free(struct proc_helper *h)
{
	LIST_REMOVE(h, entry);
	if (h->ev != NULL)
		event_free(h->ev);
	if (h->out_fd >= 0)
		close(h->out_fd);
	evbuffer_free(h->out);
	free(h);
}

/* Run the callback once the helper was reaped and its output reached EOF. */
static void
proc_helper_check(struct proc_helper *h)
{
	size_t len;
	char *out;

	if (!h->reaped || !h->eof)
		return;
	evbuffer_add(h->out, "", 1);
	len = evbuffer_get_length(h->out) - 1;
	out = (char *)evbuffer_pullup(h->out, -1);
	h->cb(h->wstatus, out, len, h->arg);
	proc_helper_free(h);
}

/* Capture what the helper prints (bounded). */
static void
proc_helper_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc_helper *h = arg;
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n > 0) {
			if (evbuffer_get_length(h->out) < PROC_HELPER_OUTPUT_MAX)
				evbuffer_add(h->out, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		break;
	}
	event_del(h->ev);
	close(h->out_fd);
	h->out_fd = -1;
	h->eof = true;
	proc_helper_check(h);
}

void
proc_child_reset_signals(void)
{
	sigset_t none;
	int sig;

	for (sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the child: move src to dst (src may be -1 meaning /dev/null). */
static int
proc_child_dup(int src, int dst)
{
	int fd;

	if (src < 0) {
		fd = open("/dev/null", O_RDWR);
		if (fd < 0)
			return -1;
		if (fd != dst) {
			if (dup2(fd, dst) < 0)
				return -1;
			close(fd);
		}
		return 0;
	}
	return dup2(src, dst) < 0 ? -1 : 0;
}

/* Fork a tracked helper; in the child, run fn (when set) or exec argv with stdio fds. */
static pid_t
proc_helper_start(char *const argv[], const int fds_in[3], int extra_fd, int (*fn)(void *),
    void *fnarg, proc_helper_cb cb, void *arg, struct status *st)
{
	struct proc_helper *h;
	int cap[2], fds[3] = {-1, -1, -1}, high[4], i;
	pid_t pid;

	if (fds_in != NULL)
		memcpy(fds, fds_in, sizeof fds);
	if (pipe2(cap, O_CLOEXEC) < 0)
		return status_errno(st, ST_INTERNAL, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(cap[0]);
		close(cap[1]);
		return status_errno(st, ST_INTERNAL, errno, "fork");
	}
	if (pid == 0) {
		proc_child_reset_signals();
		setsid();
		if (fn != NULL) {
			dup2(cap[1], 1);
			dup2(cap[1], 2);
			close_range(3, ~0U, 0);
			_exit(fn(fnarg));
		}
		/* Lift every source above the targets first, so no dup2 clobbers another source. */
		high[0] = fds[0] >= 0 ? fcntl(fds[0], F_DUPFD_CLOEXEC, 100) : -1;
		high[1] = fcntl(fds[1] >= 0 ? fds[1] : cap[1], F_DUPFD_CLOEXEC, 100);
		high[2] = fcntl(fds[2] >= 0 ? fds[2] : cap[1], F_DUPFD_CLOEXEC, 100);
		high[3] = extra_fd >= 0 ? fcntl(extra_fd, F_DUPFD_CLOEXEC, 100) : -1;
		for (i = 0; i < 3; i++) {
			if (proc_child_dup(high[i], i) < 0)
				_exit(126);
		}
		if (high[3] >= 0 && dup2(high[3], 3) < 0)
			_exit(126);
		/* Only stdio (and fd 3) go to the helper, nothing of the agent's. */
		close_range(high[3] >= 0 ? 4 : 3, ~0U, 0);
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(cap[1]);
	h = xcalloc(1, sizeof *h);
	h->pid = pid;
	h->out_fd = cap[0];
	h->out = evbuffer_new();
	h->cb = cb;
	h->arg = arg;
	fd_set_nonblock(h->out_fd, true);
	h->ev = event_new(agent.base, h->out_fd, EV_READ | EV_PERSIST, proc_helper_read_cb, h);
	event_add(h->ev, NULL);
	LIST_INSERT_HEAD(&proc_helpers, h, entry);
	return pid;
}

pid_t
proc_helper_spawn(char *const argv[], const int fds[3], int extra_fd, proc_helper_cb cb, void *arg,
    struct status *st)
{
	return proc_helper_start(argv, fds, extra_fd, NULL, NULL, cb, arg, st);
}

pid_t
proc_helper_fork(int (*fn)(void *), void *fnarg, proc_helper_cb cb, void *arg, struct status *st)
{
	return proc_helper_start(NULL, NULL, -1, fn, fnarg, cb, arg, st);
}

bool
proc_helper_reaped(pid_t pid, int wstatus)
{
	struct proc_helper *h;

	LIST_FOREACH (h, &proc_helpers, entry) {
		if (h->pid == pid && !h->reaped) {
			h->reaped = true;
			h->wstatus = wstatus;
			proc_helper_check(h);
			return true;
		}
	}
	return false;
}

void
proc_helper_free_all(void)
{
	struct proc_helper *h;

	while ((h = LIST_FIRST(&proc_helpers)) != NULL)
		proc_helper_free(h);
}
