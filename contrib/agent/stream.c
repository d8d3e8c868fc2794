/*
 * stream.c: the stream port (PROTOCOL.md section 3), one connection per stdio stream.
 *
 * Each struct stream owns its socket (a bufferevent, closed once when the stream is freed)
 * and the pipe end that proc_stream_attach() handed it (the stdin write end, or the
 * stdout/stderr read end, or a dup of the pty master). It runs on the loop thread only and
 * holds a reference on its process.
 *
 * Life of a stream: HELLO (the first frame names id/exec_id/stream, within AGENT_HELLO_MS;
 * anything wrong closes the connection with a log line), then ACTIVE. EOF is a zero-length
 * frame, never a shutdown() or close (a transport-level shutdown can overtake data still in
 * flight and lose the last chunk); each side sends exactly one. The socket is
 * closed only when EOF was both sent (and flushed) and received, or when the peer broke the
 * protocol or vanished, or after AGENT_HALF_CLOSED_MS half-closed (logged).
 * The two directions are explicit states, named as in the shim (frame.h): tx (OPEN,
 * EOF_QUEUED, EOF_SENT once flushed) and rx (OPEN, EOF), both CLOSED with the socket.
 *
 * The data paths live in stream-output.c (stdout/stderr) and stream-input.c (stdin); this
 * file frees a stream once both its socket and its pipe are closed, on a later loop turn.
 * The process table acts on a stream only through the struct proc_stream_ops that
 * stream_init() registers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "frame.h"
#include "log.h"
#include "msg.h"
#include "stream.h"
#include "util.h"

static LIST_HEAD(, stream) stream_all = LIST_HEAD_INITIALIZER(stream_all);

/* Free the stream once both its socket and its pipe are closed. */
static void
stream_free(struct stream *s)
{
	LIST_REMOVE(s, entry);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->pipe_ev != NULL)
		event_free(s->pipe_ev);
	if (s->sock_ev != NULL)
		event_free(s->sock_ev);
	ptimer_free(s->batch_tm);
	if (s->pipe_fd >= 0)
		close(s->pipe_fd);
	stream_frame_pipe_close(s);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->pending != NULL)
		evbuffer_free(s->pending);
	if (s->p != NULL) {
		if (!s->orphaned)
			proc_stream_gone(s->p, s->kind, s);
		proc_unref(s->p);
	}
	free(s->id);
	free(s->exec_id);
	free(s);
}

static void
stream_free_cb(evutil_socket_t fd, short what, void *arg)
{
	stream_free(arg);
}

/* Free on a later loop turn, so no caller up the stack touches freed memory. */
static void
stream_schedule_free(struct stream *s)
{
	if (s->freeing)
		return;
	s->freeing = true;
	event_base_once(agent.base, -1, EV_TIMEOUT, stream_free_cb, s, NULL);
}

/* Close the socket (the fd is closed here, once). */
void
stream_close_socket(struct stream *s)
{
	if (s->bev == NULL)
		return;
	if (s->sock_ev != NULL)
		event_del(s->sock_ev);
	/* The rest of a spliced frame has nowhere to go: dropped with its frame pipe. */
	s->splice_left = 0;
	stream_frame_pipe_close(s);
	bufferevent_free(s->bev);
	s->bev = NULL;
	s->tx = STREAM_TX_CLOSED;
	s->rx = STREAM_RX_CLOSED;
	if (s->timer != NULL)
		evtimer_del(s->timer);
}

/* Close the pipe end; a terminal's stdin is ended with VEOF, since the pty stays open. */
void
stream_close_pipe(struct stream *s)
{
	if (s->pipe_closed)
		return;
	s->pipe_closed = true;
	if (s->pty_wait) {
		/* No master yet: the process owes the VEOF to the master when it arrives. */
		s->pty_wait = false;
		if (s->phase == STREAM_ACTIVE && s->kind == STDIO_IN && !s->orphaned &&
		    !s->discard && (proc_is_live(s->p) || s->p->state == PROC_CREATED))
			proc_pty_eof_later(s->p, s->last_in >= 0 && s->last_in != '\n');
		return;
	}
	if (s->phase == STREAM_ACTIVE && s->kind == STDIO_IN && !s->orphaned && s->p->terminal &&
	    !s->discard && s->pipe_fd >= 0 && (proc_is_live(s->p) || s->p->state == PROC_CREATED))
		proc_pty_eof(s->p, s->pipe_fd, s->last_in >= 0 && s->last_in != '\n');
	if (s->pipe_ev != NULL)
		event_del(s->pipe_ev);
	if (s->batch_tm != NULL)
		ptimer_disarm(s->batch_tm);
	/* Stdin parked on a full pipe reads the socket again: the rest is dropped, EOF awaited. */
	stream_input_unpark(s);
	if (s->pipe_fd >= 0)
		close(s->pipe_fd);
	s->pipe_fd = -1;
}

/* Queue our one EOF frame. */
void
stream_send_eof(struct stream *s)
{
	static const uint8_t zero[STREAM_LEN_SIZE];

	if (s->tx != STREAM_TX_OPEN)
		return;
	s->tx = STREAM_TX_EOF_QUEUED;
	if (s->bev != NULL)
		evbuffer_add(bufferevent_get_output(s->bev), zero, sizeof zero);
}

/* The stream failed (protocol error or the peer vanished): drop the socket. */
void
stream_fail(struct stream *s, const char *why)
{
	if (s->phase == STREAM_HELLO)
		log_warn("stream connection closed before its header: %s", why);
	else
		log_warn_id(
		    s->id, s->exec_id, "%s stream failed: %s", stdio_kind_name(s->kind), why);
	stream_close_socket(s);
	if (s->phase == STREAM_ACTIVE && s->kind == STDIO_IN) {
		/* Nobody will feed stdin any more: the process sees EOF. */
		stream_close_pipe(s);
	}
	if (s->pipe_paused && !s->pipe_closed) {
		/* Keep draining the output pipe (discarded) so the process never blocks. */
		s->pipe_paused = false;
		event_add(s->pipe_ev, NULL);
		if (!s->orphaned)
			proc_grace_update(s->p);
	}
	stream_check(s);
}

/* The hello deadline or the half-closed timeout expired. */
static void
stream_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	if (s->phase == STREAM_HELLO) {
		stream_fail(s, "no header within the deadline");
		return;
	}
	log_warn_id(s->id, s->exec_id,
	    "%s stream half-closed for %d s (eof sent %d, received %d): "
	    "closing",
	    stdio_kind_name(s->kind), AGENT_HALF_CLOSED_MS / 1000, s->tx != STREAM_TX_OPEN,
	    s->rx != STREAM_RX_OPEN);
	stream_close_socket(s);
	if (s->kind == STDIO_IN)
		stream_close_pipe(s);
	stream_check(s);
}

/* Decide what is finished: report output done, close the socket, free. */
void
stream_check(struct stream *s)
{
	bool flushed;

	flushed = s->bev == NULL ||
		  (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 && s->splice_left == 0);
	if (s->tx == STREAM_TX_EOF_QUEUED && flushed)
		s->tx = STREAM_TX_EOF_SENT;
	if (s->phase == STREAM_ACTIVE && s->kind != STDIO_IN && !s->done_reported &&
	    s->pipe_closed && (s->tx == STREAM_TX_EOF_SENT || s->tx == STREAM_TX_CLOSED)) {
		s->done_reported = true;
		if (!s->orphaned)
			proc_output_done(s->p, s->kind);
	}
	if (s->tx == STREAM_TX_EOF_SENT && s->rx == STREAM_RX_EOF)
		stream_close_socket(s);
	/* Half-closed: we are done sending and wait for the peer's EOF. */
	if (s->bev != NULL && s->phase == STREAM_ACTIVE && s->tx != STREAM_TX_OPEN &&
	    s->rx == STREAM_RX_OPEN && !evtimer_pending(s->timer, NULL)) {
		struct timeval tv = {AGENT_HALF_CLOSED_MS / 1000, 0};
		evtimer_add(s->timer, &tv);
	}
	if (s->bev == NULL && (s->phase == STREAM_HELLO || s->pipe_closed))
		stream_schedule_free(s);
}

/* Parse the hello frame and attach to the process. 0, 1 for "need more", -1 failed. */
static int
stream_hello(struct stream *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	cleanup_json json_t *hello = NULL;
	const char *id = NULL, *exec_id = "", *name = NULL;
	struct container *c;
	struct proc *p;
	struct status st;
	json_error_t jerr;
	uint8_t *buf;
	uint32_t len;
	int k, fd;

	if (evbuffer_get_length(in) < STREAM_LEN_SIZE)
		return 1;
	buf = evbuffer_pullup(in, STREAM_LEN_SIZE);
	len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (len == 0 || len > STREAM_HELLO_MAX) {
		stream_fail(s, "bad header length");
		return -1;
	}
	if (evbuffer_get_length(in) < STREAM_LEN_SIZE + len)
		return 1;
	buf = evbuffer_pullup(in, STREAM_LEN_SIZE + len);
	hello = json_loadb((const char *)buf + STREAM_LEN_SIZE, len, 0, &jerr);
	evbuffer_drain(in, STREAM_LEN_SIZE + len);
	if (hello == NULL || !json_is_object(hello)) {
		stream_fail(s, "header is not a JSON object");
		return -1;
	}
	if (msg_get_string(hello, "header", "id", true, &id, &st) < 0 ||
	    msg_get_string(hello, "header", "exec_id", false, &exec_id, &st) < 0 ||
	    msg_get_string(hello, "header", "stream", true, &name, &st) < 0) {
		stream_fail(s, st.msg);
		return -1;
	}
	for (k = 0; k < STDIO_N; k++) {
		if (strcmp(name, stdio_kind_name(k)) == 0)
			break;
	}
	if (k == STDIO_N) {
		stream_fail(s, "header.stream: unknown stream name");
		return -1;
	}
	c = container_find(id);
	p = c != NULL ? proc_find(c, exec_id) : NULL;
	if (p == NULL) {
		status_set(&st, ST_NOT_FOUND, "unknown container %.*s exec %.*s", LOG_STR_MAX, id,
		    LOG_STR_MAX, exec_id);
		stream_fail(s, st.msg);
		return -1;
	}
	if (proc_stream_attach(p, k, s, &fd, &st) < 0) {
		stream_fail(s, st.msg);
		return -1;
	}
	/* Every field is set before the process may act on the stream (activated below). */
	s->p = p;
	proc_ref(p);
	s->kind = k;
	s->id = xstrdup(id);
	s->exec_id = xstrdup(exec_id);
	s->pipe_fd = fd;
	s->phase = STREAM_ACTIVE;
	s->pty_wait = fd < 0 && p->terminal;
	evtimer_del(s->timer);
	log_debug_id(s->id, s->exec_id, "%s stream attached%s", name,
	    s->pty_wait ? " (waiting for the pty)" : "");
	if (k == STDIO_IN) {
		s->pending = evbuffer_new();
		s->splice_in = !p->terminal && stream_is_pipe(fd) && !stream_copy_forced();
		if (stream_is_pipe(fd))
			(void)fcntl(fd, F_SETPIPE_SZ, STREAM_PIPE_SIZE);
		if (!s->pty_wait)
			s->pipe_ev = event_new(
			    agent.base, fd, EV_WRITE | EV_PERSIST, stream_pipe_write_cb, s);
		bufferevent_setwatermark(s->bev, EV_READ, 0, AGENT_STREAM_PENDING);
	} else if (!s->pty_wait) {
		stream_output_setup(s);
		s->pipe_ev =
		    event_new(agent.base, fd, EV_READ | EV_PERSIST, stream_pipe_read_cb, s);
		event_add(s->pipe_ev, NULL);
	}
	/* Now the process may close our stdin, or let a parked StartProcess go on. */
	proc_stream_activated(p, k);
	return s->bev != NULL ? 0 : -1;
}

/* Socket input: the hello first, then frames. */
static void
stream_read_cb(struct bufferevent *bev, void *arg)
{
	struct stream *s = arg;

	if (s->phase == STREAM_HELLO && stream_hello(s) != 0)
		return;
	stream_input(s);
	stream_input_bulk(s);
}

/* The socket hit EOF or an error: the stream failed. */
void
stream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct stream *s = arg;

	if (stream_input_complete_close(s))
		return;
	if (what & BEV_EVENT_EOF)
		stream_fail(s, s->rx == STREAM_RX_EOF ? "peer closed before our EOF was read"
						      : "peer closed without EOF");
	else if (what & BEV_EVENT_ERROR)
		stream_fail(s, strerror(EVUTIL_SOCKET_ERROR()));
}

/* A new stream connection: wait for its hello frame (bounded). */
void
stream_accept(int fd)
{
	struct stream *s = xcalloc(1, sizeof *s);
	struct timeval tv = {AGENT_HELLO_MS / 1000, 0};

	s->pipe_fd = -1;
	s->frame_rd = s->frame_wr = -1;
	s->last_in = -1;
	s->phase = STREAM_HELLO;
	stream_decoder_init(&s->dec, STREAM_FRAME_MAX);
	s->bev = bufferevent_socket_new(agent.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		close(fd);
		free(s);
		return;
	}
	/* libevent moves 16 KiB per socket call by default: far too little for bulk stdio. */
	bufferevent_set_max_single_read(s->bev, STREAM_READ_CHUNK);
	bufferevent_set_max_single_write(s->bev, STREAM_READ_CHUNK);
	LIST_INSERT_HEAD(&stream_all, s, entry);
	s->timer = evtimer_new(agent.base, stream_timer_cb, s);
	evtimer_add(s->timer, &tv);
	bufferevent_setcb(s->bev, stream_read_cb, stream_write_cb, stream_event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

void
stream_close_input(struct stream *s)
{
	if (s->kind != STDIO_IN)
		return;
	s->input_close = true;
	if (s->phase == STREAM_ACTIVE)
		stream_input_maybe_close(s);
}

bool
stream_output_paused(const struct stream *s)
{
	return s->phase == STREAM_ACTIVE && s->kind != STDIO_IN && !s->pipe_closed &&
	       s->pipe_paused;
}

bool
stream_detach_output(struct stream *s)
{
	if (s->kind == STDIO_IN || s->pipe_closed)
		return false;
	/* Bytes already in the pipe are output too: take them before closing it. */
	if (!s->pty_wait)
		stream_pipe_pump(s, false);
	stream_close_pipe(s);
	stream_send_eof(s);
	stream_check(s);
	return true;
}

/*
 * The pty master arrived: a waiting stream starts using it (stdin flushes what it parked);
 * a stream that finished meanwhile, or no fd (-1: the dup failed), ends the pipe side.
 */
void
stream_set_pty(struct stream *s, int fd)
{
	if (!s->pty_wait || s->pipe_closed) {
		if (fd >= 0)
			close(fd);
		return;
	}
	s->pty_wait = false;
	if (fd < 0) {
		s->discard = true;
		if (s->pending != NULL)
			evbuffer_drain(s->pending, evbuffer_get_length(s->pending));
		s->pipe_closed = true;
		stream_send_eof(s);
		stream_check(s);
		return;
	}
	s->pipe_fd = fd;
	if (s->kind == STDIO_IN) {
		s->pipe_ev =
		    event_new(agent.base, fd, EV_WRITE | EV_PERSIST, stream_pipe_write_cb, s);
		if (evbuffer_get_length(s->pending) > 0)
			event_add(s->pipe_ev, NULL);
		else
			stream_input_maybe_close(s);
		return;
	}
	s->pipe_ev = event_new(agent.base, fd, EV_READ | EV_PERSIST, stream_pipe_read_cb, s);
	event_add(s->pipe_ev, NULL);
}

/* The process was removed: the stream finishes on its own. */
void
stream_orphan(struct stream *s)
{
	s->orphaned = true;
	if (s->kind == STDIO_IN) {
		/* Parked input for a master that will never come goes nowhere. */
		if (s->pty_wait && s->pending != NULL)
			evbuffer_drain(s->pending, evbuffer_get_length(s->pending));
		stream_close_input(s);
	} else if (s->pty_wait) {
		/* The master never came: there is no output to wait for. */
		stream_close_pipe(s);
		stream_send_eof(s);
		stream_check(s);
	}
}

static const struct proc_stream_ops stream_proc_ops = {
    .close_input = stream_close_input,
    .detach_output = stream_detach_output,
    .output_paused = stream_output_paused,
    .set_pty = stream_set_pty,
    .orphan = stream_orphan,
};

void
stream_init(void)
{
	proc_set_stream_ops(&stream_proc_ops);
}

/*
 * Shutdown: close every stream at once. A stream whose free is already scheduled is left to
 * that callback (the shutdown's last loop turn runs it): freeing it here too would free it
 * twice.
 */
void
stream_close_all(void)
{
	struct stream *s, *next;

	for (s = LIST_FIRST(&stream_all); s != NULL; s = next) {
		next = LIST_NEXT(s, entry);
		/* The process outlives its streams here (proc_shutdown comes later): unlink. */
		if (s->p != NULL && !s->orphaned && s->p->streams[s->kind] == s)
			s->p->streams[s->kind] = NULL;
		s->orphaned = true;
		stream_close_socket(s);
		stream_close_pipe(s);
		if (s->freeing)
			continue;
		s->phase = STREAM_ACTIVE;
		stream_free(s);
	}
}
