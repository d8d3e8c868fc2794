/*
 * proc.c: the container and process table, stdio creation, reaping and helper children.
 *
 * Owns every struct container and struct proc (reference counted: control requests in flight,
 * runner callbacks and streams hold references; the table holds one until the object is
 * removed; the last unref frees). Runs on the loop thread only. Children are reaped through a
 * signalfd for SIGCHLD (main() blocks SIGCHLD before any thread exists) with waitpid(-1) in a
 * loop, and the agent is a child subreaper, so processes started by runc, and orphans of the
 * workload, are reaped too: no zombie is left. A pid reaped before anyone claimed it (an exec
 * that exits before `runc exec` wrote its pid file) is remembered in a small ring, but only
 * while such a claim is pending (proc_claim_begin/end): a pid the kernel reuses later must
 * never inherit an old orphan's exit. The process runner knows its pid from fork() and never
 * looks at the ring.
 *
 * A process is finished only when both its exit status and its output EOFs have arrived
 * (state RUNNING -> EXITED -> STOPPED): the exit event is published when every declared
 * output stream reported proc_output_done(), which a stream does only once its socket flushed.
 * A descendant may hold the output pipes after the exit: the drain grace (AGENT_DRAIN_GRACE_MS)
 * counts only time in which the pipes gave nothing while the shim had room (it is re-armed
 * when bytes are read and stopped while a stream is paused by a slow reader); when it expires
 * the pipes are read until empty and detached, with a log line. A process reaped while its
 * output is still owed is announced at once (control_publish_exit_pending: the
 * PROTOCOL_TOPIC_EXIT_PENDING event), so the shim can bound how long a host side that nobody
 * reads may hold the output back: past its deadline the shim discards the rest, our streams
 * drain and the exit is published.
 *
 * Helper children (runc, mount) are tracked in a list; their stdout/stderr are captured
 * through a pipe read by the loop, and their callback runs once both the exit status and the
 * pipe's EOF arrived.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "agent.h"
#include "log.h"
#include "runner.h"
#include "util.h"

#define PROC_UNCLAIMED_MAX     128
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

struct proc_unclaimed {
	pid_t pid; /* 0: free slot */
	int wstatus;
	uint64_t seq; /* proc_reap_seq when it was reaped */
};

static TAILQ_HEAD(, container) proc_containers = TAILQ_HEAD_INITIALIZER(proc_containers);
static LIST_HEAD(, proc_helper) proc_helpers = LIST_HEAD_INITIALIZER(proc_helpers);
static struct proc_unclaimed proc_unclaimed[PROC_UNCLAIMED_MAX];
static unsigned proc_unclaimed_next;
static uint64_t proc_reap_seq; /* children reaped so far */
static unsigned proc_claims;   /* processes with a pending claim */
static int proc_sigfd = -1;
static struct event *proc_sigev;

static void proc_on_exit(struct proc *p, int wstatus);
static void proc_helper_check(struct proc_helper *h);
static void proc_grace_cb(evutil_socket_t fd, short what, void *arg);

/* ---- containers ---- */

struct container *
container_find(const char *id)
{
	struct container *c;

	TAILQ_FOREACH (c, &proc_containers, entry) {
		if (strcmp(c->id, id) == 0)
			return c;
	}
	return NULL;
}

/* A new container in the table, holding the table's reference. */
struct container *
container_new(const char *id, const char *bundle)
{
	struct container *c = xcalloc(1, sizeof *c);

	c->id = xstrdup(id);
	c->bundle = xstrdup(bundle != NULL ? bundle : "");
	c->rootfs = xstrdup("");
	TAILQ_INIT(&c->procs);
	c->refs = 1;
	TAILQ_INSERT_TAIL(&proc_containers, c, entry);
	return c;
}

void
container_ref(struct container *c)
{
	c->refs++;
}

/* Drop a reference; the last one frees the runner data and the container. */
void
container_unref(struct container *c)
{
	if (c == NULL || --c->refs > 0)
		return;
	if (agent.runner->free_container != NULL)
		agent.runner->free_container(c);
	rootfs_unmount(c);
	free(c->id);
	free(c->bundle);
	free(c->rootfs);
	free(c->oom_file);
	free(c);
}

/* Take the container out of the table; its processes are removed with it. */
void
container_remove(struct container *c)
{
	struct proc *p;

	if (c->deleted)
		return;
	c->deleted = true;
	while ((p = TAILQ_FIRST(&c->procs)) != NULL)
		proc_remove(p);
	c->init = NULL;
	TAILQ_REMOVE(&proc_containers, c, entry);
	container_unref(c);
}

/* ---- processes ---- */

struct proc *
proc_find(struct container *c, const char *exec_id)
{
	struct proc *p;

	TAILQ_FOREACH (p, &c->procs, entry) {
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	}
	return NULL;
}

bool
proc_is_live(const struct proc *p)
{
	return p->pid > 0 && p->state != PROC_EXITED && p->state != PROC_STOPPED;
}

/* The live process with this pid, if any. */
static struct proc *
proc_find_pid(pid_t pid)
{
	struct container *c;
	struct proc *p;

	TAILQ_FOREACH (c, &proc_containers, entry) {
		TAILQ_FOREACH (p, &c->procs, entry) {
			if (p->pid == pid && proc_is_live(p))
				return p;
		}
	}
	return NULL;
}

static void
proc_close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Create the terminal: the master stays in the agent, the slave goes to the child. */
static int
proc_open_pty(struct proc *p, struct status *st)
{
	char name[128];
	int fd;

	p->pty_master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (p->pty_master < 0)
		return status_errno(st, ST_INTERNAL, errno, "posix_openpt");
	if (grantpt(p->pty_master) < 0 || unlockpt(p->pty_master) < 0 ||
	    ptsname_r(p->pty_master, name, sizeof name) != 0)
		return status_errno(st, ST_INTERNAL, errno, "pty setup");
	fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return status_errno(st, ST_INTERNAL, errno, "open %s", name);
	p->pty_slave = fd;
	fd_set_nonblock(p->pty_master, true);
	return 0;
}

/* Create one stdio: a pipe when declared, else /dev/null. */
static int
proc_open_stdio(struct proc *p, enum stdio_kind k, struct status *st)
{
	int fds[2];

	if (!p->declared[k]) {
		p->child_fd[k] = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (p->child_fd[k] < 0)
			return status_errno(st, ST_INTERNAL, errno, "open /dev/null");
		return 0;
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		return status_errno(st, ST_INTERNAL, errno, "pipe");
	if (k == STDIO_IN) {
		p->child_fd[k] = fds[0];
		p->parent_fd[k] = fds[1];
	} else {
		p->child_fd[k] = fds[1];
		p->parent_fd[k] = fds[0];
	}
	fd_set_nonblock(p->parent_fd[k], true);
	return 0;
}

/* Allocate a process in c (the init when exec_id is "") with its stdio; NULL with *st. */
struct proc *
proc_new(struct container *c, const char *exec_id, json_t *process, bool terminal,
    const bool declared[STDIO_N], struct status *st)
{
	struct proc *p = xcalloc(1, sizeof *p);
	int k;

	p->c = c;
	container_ref(c);
	p->exec_id = xstrdup(exec_id);
	p->process = json_incref(process);
	p->terminal = terminal;
	p->pty_master = p->pty_slave = -1;
	p->refs = 1;
	for (k = 0; k < STDIO_N; k++) {
		p->parent_fd[k] = p->child_fd[k] = -1;
		p->declared[k] = declared[k];
	}
	if (terminal && agent.runner == &runner_oci_ops) {
		/* runc allocates the pty in the container: proc_set_pty_master() brings it. */
		p->declared[STDIO_ERR] = false;
	} else if (terminal) {
		/* The pty merges stdout and stderr: there is no stderr stream. */
		p->declared[STDIO_ERR] = false;
		if (proc_open_pty(p, st) < 0)
			goto fail;
		for (k = 0; k < STDIO_N; k++) {
			p->child_fd[k] = dup(p->pty_slave);
			if (p->child_fd[k] < 0) {
				status_errno(st, ST_INTERNAL, errno, "dup");
				goto fail;
			}
			fd_set_cloexec(p->child_fd[k]);
		}
	} else {
		for (k = 0; k < STDIO_N; k++) {
			if (proc_open_stdio(p, k, st) < 0)
				goto fail;
		}
	}
	TAILQ_INSERT_TAIL(&c->procs, p, entry);
	if (exec_id[0] == '\0')
		c->init = p;
	return p;
fail:
	p->deleted = true;
	proc_unref(p);
	return NULL;
}

void
proc_ref(struct proc *p)
{
	p->refs++;
}

/* Drop a reference; the last one closes the stdio ends and frees the process. */
void
proc_unref(struct proc *p)
{
	int k;

	if (p == NULL || --p->refs > 0)
		return;
	if (agent.runner->free_proc != NULL)
		agent.runner->free_proc(p);
	for (k = 0; k < STDIO_N; k++) {
		proc_close_fd(&p->parent_fd[k]);
		proc_close_fd(&p->child_fd[k]);
	}
	proc_close_fd(&p->pty_master);
	proc_close_fd(&p->pty_slave);
	if (p->start_timer != NULL)
		event_free(p->start_timer);
	if (p->grace_timer != NULL)
		event_free(p->grace_timer);
	json_decref(p->process);
	container_unref(p->c);
	free(p->exec_id);
	free(p);
}

/* Take the process out of its container; streams finish on their own. */
void
proc_remove(struct proc *p)
{
	int k;

	if (p->deleted)
		return;
	p->deleted = true;
	control_proc_removed(p);
	for (k = 0; k < STDIO_N; k++) {
		if (p->streams[k] != NULL) {
			stream_orphan(p->streams[k]);
			p->streams[k] = NULL;
		}
	}
	if (p->grace_timer != NULL)
		evtimer_del(p->grace_timer);
	proc_claim_end(p);
	TAILQ_REMOVE(&p->c->procs, p, entry);
	if (p->c->init == p)
		p->c->init = NULL;
	proc_unref(p);
}

void
proc_close_child_fds(struct proc *p)
{
	int k;

	for (k = 0; k < STDIO_N; k++)
		proc_close_fd(&p->child_fd[k]);
	proc_close_fd(&p->pty_slave);
}

/* Deliver an exit reaped before the pid was known (deferred to a fresh loop turn). */
static void
proc_unclaimed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;

	if (!p->deleted && proc_is_live(p))
		proc_on_exit(p, p->unclaimed_wstatus);
	proc_unref(p);
}

void
proc_claim_begin(struct proc *p)
{
	if (p->claiming)
		return;
	p->claiming = true;
	p->claim_seq = proc_reap_seq;
	proc_claims++;
}

/* The claim is over: forget every unclaimed pid that no pending claim can still want. */
void
proc_claim_end(struct proc *p)
{
	uint64_t oldest = UINT64_MAX;
	struct container *c;
	struct proc *q;
	unsigned i;

	if (!p->claiming)
		return;
	p->claiming = false;
	proc_claims--;
	TAILQ_FOREACH (c, &proc_containers, entry) {
		TAILQ_FOREACH (q, &c->procs, entry) {
			if (q->claiming && q->claim_seq < oldest)
				oldest = q->claim_seq;
		}
	}
	for (i = 0; i < PROC_UNCLAIMED_MAX; i++) {
		if (proc_unclaimed[i].pid != 0 && proc_unclaimed[i].seq <= oldest)
			proc_unclaimed[i].pid = 0;
	}
}

void
proc_set_pid(struct proc *p, pid_t pid)
{
	unsigned i;

	p->pid = pid;
	if (!p->claiming)
		return; /* forked by us: the pid is ours, no stale entry may match it */
	for (i = 0; i < PROC_UNCLAIMED_MAX; i++) {
		if (proc_unclaimed[i].pid == pid && proc_unclaimed[i].seq > p->claim_seq) {
			proc_unclaimed[i].pid = 0;
			p->unclaimed_wstatus = proc_unclaimed[i].wstatus;
			proc_ref(p);
			event_base_once(agent.base, -1, EV_TIMEOUT, proc_unclaimed_cb, p, NULL);
			return;
		}
	}
}

/*
 * Hand a stream its end of the process's stdio (a dup of the pty master). A terminal whose
 * master has not arrived yet (oci) gives -1: the stream waits for stream_set_pty().
 */
int
proc_stream_attach(struct proc *p, enum stdio_kind k, struct stream *s, int *fd, struct status *st)
{
	*fd = -1;
	if (!p->declared[k])
		return status_set(st, ST_FAILED_PRECONDITION, "stream %d was not declared", k);
	if (p->streams[k] != NULL || p->out_done[k])
		return status_set(st, ST_ALREADY_EXISTS, "stream attached twice");
	if (p->terminal && p->pty_master < 0) {
		p->streams[k] = s;
		return 0;
	}
	if (p->terminal) {
		*fd = fcntl(p->pty_master, F_DUPFD_CLOEXEC, 3);
		if (*fd < 0)
			return status_errno(st, ST_INTERNAL, errno, "dup pty");
	} else {
		*fd = steal_fd(&p->parent_fd[k]);
	}
	p->streams[k] = s;
	return 0;
}

void
proc_stream_activated(struct proc *p, enum stdio_kind k)
{
	struct stream *s = p->streams[k];

	if (s != NULL && k == STDIO_IN &&
	    (p->stdin_close_requested || p->state == PROC_EXITED || p->state == PROC_STOPPED))
		stream_close_input(s);
	control_streams_changed(p);
}

/* Every declared stream has attached (or come and gone); else *missing. */
bool
proc_streams_ready(struct proc *p, enum stdio_kind *missing)
{
	int k;

	for (k = 0; k < STDIO_N; k++) {
		if (p->declared[k] && p->streams[k] == NULL && !p->out_done[k]) {
			*missing = k;
			return false;
		}
	}
	return true;
}

/* Publish the exit once the status is in and every output stream is done. */
static void
proc_check_done(struct proc *p)
{
	if (p->state != PROC_EXITED)
		return;
	if ((p->declared[STDIO_OUT] && !p->out_done[STDIO_OUT]) ||
	    (p->declared[STDIO_ERR] && !p->out_done[STDIO_ERR]))
		return;
	p->state = PROC_STOPPED;
	if (p->grace_timer != NULL)
		evtimer_del(p->grace_timer);
	if (!p->deleted)
		control_publish_exit(p);
}

void
proc_output_done(struct proc *p, enum stdio_kind k)
{
	p->out_done[k] = true;
	proc_check_done(p);
}

/* A stream was freed: it no longer holds up the exit. */
void
proc_stream_gone(struct proc *p, enum stdio_kind k, struct stream *s)
{
	if (p->streams[k] == s)
		p->streams[k] = NULL;
	/*
	 * Every stream, stdin too, counts as attached once it has come and gone: a stdin whose
	 * EOF went both ways before StartProcess (the runtime wrote and closed it early) must not
	 * fail the start as "not attached".
	 */
	p->out_done[k] = true;
	proc_check_done(p);
}

void
proc_set_pty_master(struct proc *p, int fd)
{
	struct winsize ws = {0};
	int k, d;

	if (p->pty_master >= 0)
		close(p->pty_master);
	p->pty_master = fd;
	fd_set_nonblock(fd, true);
	if (p->ws_pending) {
		p->ws_pending = false;
		ws.ws_row = p->ws_rows;
		ws.ws_col = p->ws_cols;
		if (ioctl(fd, TIOCSWINSZ, &ws) < 0)
			log_warn_id(p->c->id, p->exec_id, "pty: TIOCSWINSZ: %s", strerror(errno));
	}
	for (k = 0; k < STDIO_N; k++) {
		if (p->streams[k] == NULL)
			continue;
		d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (d < 0)
			log_warn_id(p->c->id, p->exec_id, "pty: dup: %s", strerror(errno));
		stream_set_pty(p->streams[k], d);
	}
	if (p->pty_eof_pending > 0)
		proc_pty_eof(p, fd, p->pty_eof_pending > 1);
	p->pty_eof_pending = 0;
}

int
proc_resize_pty(struct proc *p, uint32_t cols, uint32_t rows, struct status *st)
{
	struct winsize ws = {0};

	ws.ws_col = cols > 65535 ? 65535 : (unsigned short)cols;
	ws.ws_row = rows > 65535 ? 65535 : (unsigned short)rows;
	if (p->pty_master < 0) {
		p->ws_pending = true;
		p->ws_rows = ws.ws_row;
		p->ws_cols = ws.ws_col;
		return 0;
	}
	if (ioctl(p->pty_master, TIOCSWINSZ, &ws) < 0)
		return status_errno(st, ST_INTERNAL, errno, "TIOCSWINSZ");
	return 0;
}

void
proc_pty_eof_later(struct proc *p, bool mid_line)
{
	if (p->pty_eof_pending == 0)
		p->pty_eof_pending = mid_line ? 2 : 1;
}

void
proc_pty_eof(struct proc *p, int master_fd, bool mid_line)
{
	struct termios t;
	char eof[2] = {4, 4}; /* ^D unless the terminal says otherwise */

	if (tcgetattr(master_fd, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE)
		eof[0] = eof[1] = (char)t.c_cc[VEOF];
	/* In canonical mode VEOF after a partial line only ends that line: send a second. */
	if (write(master_fd, eof, mid_line ? 2 : 1) < 0)
		log_warn_id(p->c->id, p->exec_id, "pty: write VEOF: %s", strerror(errno));
}

void
proc_close_stdin(struct proc *p)
{
	bool again = p->stdin_close_requested;

	p->stdin_close_requested = true;
	if (p->streams[STDIO_IN] != NULL) {
		stream_close_input(p->streams[STDIO_IN]);
		return;
	}
	proc_close_fd(&p->parent_fd[STDIO_IN]);
	/*
	 * A pty has no stdin of its own to close: its reader learns of the end from VEOF. With a
	 * declared stdin, the stream writes it when it closes its end (stream_close_pipe).
	 */
	if (p->terminal && !again && !p->declared[STDIO_IN] &&
	    (proc_is_live(p) || p->state == PROC_CREATED)) {
		if (p->pty_master >= 0)
			proc_pty_eof(p, p->pty_master, false);
		else
			proc_pty_eof_later(p, false);
	}
}

void
proc_grace_update(struct proc *p)
{
	struct timeval tv = {AGENT_DRAIN_GRACE_MS / 1000, (AGENT_DRAIN_GRACE_MS % 1000) * 1000};
	int k;

	static const struct timeval now_tv = {0, 0};
	int64_t now;

	if (p->state != PROC_EXITED || p->deleted)
		return;
	if (p->grace_timer == NULL)
		p->grace_timer = evtimer_new(agent.base, proc_grace_cb, p);
	now = time_mono_ms();
	for (k = STDIO_OUT; k <= STDIO_ERR; k++) {
		/* A slow reader is not a descendant holding the pipe: do not count this time. */
		if (p->streams[k] != NULL && !p->out_done[k] &&
		    stream_output_paused(p->streams[k])) {
			if (p->drain_since_ms >= 0)
				p->drain_used_ms += now - p->drain_since_ms;
			p->drain_since_ms = -1;
			evtimer_del(p->grace_timer);
			return;
		}
	}
	if (p->drain_since_ms < 0)
		p->drain_since_ms = now;
	/*
	 * Output still flowing this long after the reap comes from a descendant that keeps
	 * writing: it would hold the exit for ever. Detach now (from the timer, not from inside
	 * the stream callback that may have called us).
	 */
	if (!p->drain_capped &&
	    p->drain_used_ms + (now - p->drain_since_ms) >= agent.drain_max_ms) {
		p->drain_capped = true;
		evtimer_add(p->grace_timer, &now_tv);
		return;
	}
	evtimer_add(p->grace_timer, &tv);
}

/*
 * The drain grace expired (the pipes gave nothing for that long while the shim had room):
 * detach output pipes a descendant still holds. A detached stream still flushes what it read
 * and its EOF before it reports done, so the exit follows every byte.
 */
static void
proc_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;
	int k;

	proc_ref(p);
	for (k = STDIO_OUT; k <= STDIO_ERR; k++) {
		if (!p->declared[k] || p->out_done[k])
			continue;
		if (p->streams[k] == NULL) {
			p->out_done[k] = true;
			continue;
		}
		if (stream_output_paused(p->streams[k]) || !stream_detach_output(p->streams[k]))
			continue;
		if (p->drain_capped)
			log_warn_id(p->c->id, p->exec_id,
			    "pid %d exited but its %s pipe was still being written %d ms later (a "
			    "descendant holds it): detaching, the rest of that output is dropped",
			    (int)p->pid, stdio_kind_name(k), agent.drain_max_ms);
		else
			log_warn_id(p->c->id, p->exec_id,
			    "pid %d exited but its %s pipe stayed open with no output for %d s (a "
			    "descendant holds it): detaching",
			    (int)p->pid, stdio_kind_name(k), AGENT_DRAIN_GRACE_MS / 1000);
	}
	proc_check_done(p);
	proc_unref(p);
}

int
proc_wait_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 255;
}

/* The process was reaped: record it, end its stdin, and publish once output drained. */
static void
proc_on_exit(struct proc *p, int wstatus)
{
	int k;

	p->state = PROC_EXITED;
	p->drain_since_ms = -1;
	p->drain_used_ms = 0;
	p->exit_status = proc_wait_status(wstatus);
	clock_gettime(CLOCK_REALTIME, &p->exited_at);
	log_debug_id(
	    p->c->id, p->exec_id, "pid %d exited with status %d", (int)p->pid, p->exit_status);
	if (p->streams[STDIO_IN] != NULL)
		stream_close_input(p->streams[STDIO_IN]);
	proc_close_fd(&p->parent_fd[STDIO_IN]);
	for (k = STDIO_OUT; k <= STDIO_ERR; k++) {
		/* A declared stream that never attached has no reader: nothing to wait for. */
		if (p->declared[k] && p->streams[k] == NULL) {
			p->out_done[k] = true;
			proc_close_fd(&p->parent_fd[k]);
		}
	}
	proc_check_done(p);
	/* Output still owed to the shim: say so now, the exit itself waits for it. */
	if (p->state == PROC_EXITED && !p->deleted)
		control_publish_exit_pending(p);
	proc_grace_update(p);
}

/* ---- helpers ---- */

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

/* ---- reaping ---- */

/* Dispatch one reaped child: a workload process, a helper, or an orphan. */
static void
proc_reaped(pid_t pid, int wstatus)
{
	struct proc_helper *h;
	struct proc *p;

	proc_reap_seq++;
	p = proc_find_pid(pid);
	if (p != NULL) {
		proc_ref(p);
		proc_on_exit(p, wstatus);
		proc_unref(p);
		return;
	}
	LIST_FOREACH (h, &proc_helpers, entry) {
		if (h->pid == pid && !h->reaped) {
			h->reaped = true;
			h->wstatus = wstatus;
			proc_helper_check(h);
			return;
		}
	}
	if (proc_claims == 0) {
		/* An orphan of a workload, re-parented to us as the subreaper. */
		log_debug("reaped orphan pid %d (status %d)", (int)pid, proc_wait_status(wstatus));
		return;
	}
	log_debug("reaped pid %d (status %d) that no one claimed yet", (int)pid,
	    proc_wait_status(wstatus));
	proc_unclaimed[proc_unclaimed_next].pid = pid;
	proc_unclaimed[proc_unclaimed_next].wstatus = wstatus;
	proc_unclaimed[proc_unclaimed_next].seq = proc_reap_seq;
	proc_unclaimed_next = (proc_unclaimed_next + 1) % PROC_UNCLAIMED_MAX;
}

/* Reap every child that has exited. */
static void
proc_reap_all(void)
{
	int wstatus;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &wstatus, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		proc_reaped(pid, wstatus);
	}
}

/* SIGCHLD: drain the signalfd, then reap. */
static void
proc_sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si[16];

	while (read(fd, si, sizeof si) > 0)
		;
	proc_reap_all();
}

/* Become the subreaper and reap through a signalfd for SIGCHLD. */
int
proc_init(struct status *st)
{
	sigset_t set;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	proc_sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (proc_sigfd < 0)
		return status_errno(st, ST_INTERNAL, errno, "signalfd");
	proc_sigev = event_new(agent.base, proc_sigfd, EV_READ | EV_PERSIST, proc_sigchld_cb, NULL);
	event_add(proc_sigev, NULL);
	/* Children may have exited before the signalfd existed. */
	proc_reap_all();
	return 0;
}

/*
 * SIGKILL every live process group (SIGKILL ends a process stopped by SIGSTOP too) and reap
 * until the deadline. A reaped leader's group is left alone: its pid may be reused.
 */
void
proc_kill_all(int timeout_ms)
{
	struct container *c;
	struct proc *p;
	int64_t deadline = time_mono_ms() + timeout_ms;
	int wstatus;
	pid_t pid;

	TAILQ_FOREACH (c, &proc_containers, entry) {
		TAILQ_FOREACH (p, &c->procs, entry) {
			if (!proc_is_live(p))
				continue;
			if (kill(-p->pid, SIGKILL) < 0)
				kill(p->pid, SIGKILL);
		}
	}
	/* Reap what we can within the deadline; the kernel re-parents the rest. */
	while (time_mono_ms() < deadline) {
		pid = waitpid(-1, &wstatus, WNOHANG);
		if (pid > 0)
			continue;
		if (pid < 0 && errno != EINTR)
			break;
		usleep(10000);
	}
}

/* Remove every container, drop the helpers, close the signalfd. */
void
proc_shutdown(void)
{
	struct proc_helper *h;
	struct container *c;

	while ((c = TAILQ_FIRST(&proc_containers)) != NULL)
		container_remove(c);
	while ((h = LIST_FIRST(&proc_helpers)) != NULL)
		proc_helper_free(h);
	if (proc_sigev != NULL)
		event_free(proc_sigev);
	if (proc_sigfd >= 0)
		close(proc_sigfd);
	proc_sigev = NULL;
	proc_sigfd = -1;
}
