/*
 * proc-stdio.c: a process's side of its streams: attach, the drain after the exit, the
 * terminal and stdin.
 *
 * Runs on the loop thread. A process is finished only when both its exit status and its output
 * EOFs have arrived (state RUNNING -> EXITED -> STOPPED): the exit is published (the
 * observer's exited) when every declared output stream reported proc_output_done(), which a
 * stream does only once its socket flushed. A descendant may hold the output pipes after the
 * exit: the drain grace (AGENT_DRAIN_GRACE_MS) counts only time in which the pipes gave nothing
 * while the shim had room (it is re-armed when bytes are read and stopped while a stream is
 * paused by a slow reader); when it expires the pipes are read until empty and detached, with
 * a log line; output that keeps flowing past agent.drain_max_ms is detached too. The process
 * holds plain pointers to its streams, which call proc_stream_gone() before they go; it acts
 * on them only through struct proc_stream_ops.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "util.h"

static void proc_grace_cb(evutil_socket_t fd, short what, void *arg);

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
		proc_streams->close_input(s);
	proc_obs->streams_changed(p);
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

void
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
		proc_obs->exited(p);
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
		proc_streams->set_pty(p->streams[k], d);
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
		proc_streams->close_input(p->streams[STDIO_IN]);
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
		    proc_streams->output_paused(p->streams[k])) {
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
		if (proc_streams->output_paused(p->streams[k]) ||
		    !proc_streams->detach_output(p->streams[k]))
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
