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
 * Output (stdout/stderr): the pipe is read only while less than AGENT_STREAM_PENDING bytes wait
 * for the socket (backpressure), in frames of at most 256 KiB; the pipe's EOF queues the EOF
 * frame, and once it is flushed the process is told (proc_output_done), so the exit event is
 * published only after every byte left (a half-close must not drop queued output). If the socket
 * dies, the pipe is still drained (and discarded) so the process never blocks and its exit is still
 * published. After the process exited, reading (and pausing) re-arms (and stops) its drain grace;
 * when the grace expires, stream_detach_output() reads what the pipe holds, closes it and queues
 * EOF, and the stream reports done only once that is flushed, like any other EOF.
 *
 * Input (stdin): frames are written to the non-blocking pipe; a short write parks the rest and
 * stops consuming the socket (its bufferevent stops reading at AGENT_STREAM_PENDING), until the
 * pipe is writable again. The peer's EOF, CloseStdin or the process's exit closes the pipe
 * after what is queued, and then the agent sends its own EOF. On a terminal the pipe is a dup
 * of the pty master, which closing does not end: the terminal's VEOF is written first.
 *
 * Bulk: both directions move up to 256 KiB per system call (stdin reads the socket itself,
 * stream_input_bulk(); stdout reads the pipe straight into the socket's queue), since
 * libevent's 4 KiB/16 KiB defaults cost one process wake-up per 4 KiB.
 *
 * Zero copy (docs/ARCHITECTURE.md): while the socket's queue is empty, stdout frames go
 * straight out: FIONREAD sizes a frame (up to 1 MiB), its header is sent and its payload
 * spliced from the pipe into the socket (splice_left: what is still in the pipe; nothing else
 * may be written until it is through). A small frame from a writer still attached starts a
 * batching window (batch_tm, a timerfd: ptimer.h) instead of watching the pipe. Stdin payloads are
 * spliced from the socket into the pipe; a full pipe parks the stream (in_parked: the socket is not
 * read). A pty, or splice refused, takes the copy path.
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

#include "agent.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "ptimer.h"
#include "util.h"

#define STREAM_READ_CHUNK (256 * 1024)
/* Detaching an output pipe reads what it holds, but never more than this (a busy writer). */
#define STREAM_DETACH_MAX (64u * STREAM_READ_CHUNK)
/* Output waiting in the pipe up to this much is copied (one read, one send), more is spliced. */
#define STREAM_COPY_MAX (32u * 1024)
/* One pipe callback moves at most this much, so a busy stream cannot starve the loop. */
#define STREAM_TURN_MAX (4u * STREAM_WRITE_MAX)
/*
 * A frame smaller than this, from a writer still attached, starts a batching window: the pipe
 * is read again STREAM_BATCH_US later, so a writer of small lines costs one wake-up, one
 * frame and a few calls per window instead of per line. The pipe's EOF is never waited for:
 * a writer gone (POLLHUP) ends batching at once.
 */
#define STREAM_BATCH_MIN (64u * 1024)
#define STREAM_BATCH_US	 500
/* The process's pipes are enlarged to this, so frames can be filled from what waits. */
#define STREAM_PIPE_SIZE (1024 * 1024)

enum stream_phase {
	STREAM_HELLO,
	STREAM_ACTIVE,
};

struct stream {
	LIST_ENTRY(stream) entry;
	enum stream_phase phase;
	struct bufferevent *bev; /* NULL once the socket is closed */
	struct stream_decoder dec;
	struct event *timer; /* hello deadline, then half-closed timeout */

	struct proc *p; /* referenced */
	enum stdio_kind kind;
	char *id;
	char *exec_id;
	bool orphaned; /* the process was removed */

	int pipe_fd;
	struct event *pipe_ev;
	bool pipe_paused;	  /* output: stopped reading the pipe for backpressure */
	bool pipe_closed;	  /* the pipe end is closed (EOF, detached, stdin closed) */
	struct evbuffer *pending; /* stdin: bytes the pipe did not take yet */
	bool input_close;	  /* stdin: close the pipe once pending drained */
	bool discard;		  /* stdin: the process closed its stdin; drop data */
	int last_in;		  /* stdin: the last byte given to the pipe (-1: none) */
	bool pty_wait; /* terminal (oci): no pty master yet, stream_set_pty() brings it */

	/* Output straight from the pipe to the socket while the bufferevent's queue is empty. */
	bool direct;		 /* the pipe is a pipe: FIONREAD and splice apply */
	bool no_splice;		 /* splice was refused (or VMSHIM_IO_COPY): copy instead */
	uint32_t splice_left;	 /* payload of the frame on the wire still in the pipe */
	struct event *sock_ev;	 /* the socket is writable again (direct path only) */
	struct ptimer *batch_tm; /* the batching window ends: read the pipe again */
	/* Input: frame payloads spliced from the socket into the pipe (a real pipe, no copy). */
	bool splice_in;
	bool in_parked;	  /* the pipe is full: the socket is not read until it takes more */
	bool in_hdr_only; /* big frames come: read only the next header, splice its payload */

	enum stream_tx tx; /* OPEN, EOF_QUEUED, EOF_SENT once flushed, CLOSED (frame.h) */
	enum stream_rx rx; /* OPEN, EOF, CLOSED */
	bool done_reported;
	bool freeing; /* the free is scheduled for a later loop turn */
};

static LIST_HEAD(, stream) stream_all = LIST_HEAD_INITIALIZER(stream_all);
static uint8_t stream_buf[STREAM_READ_CHUNK];

static void stream_check(struct stream *s);
static void stream_input_unpark(struct stream *s);
static void stream_input(struct stream *s);
static void stream_input_bulk(struct stream *s);
static void stream_event_cb(struct bufferevent *bev, short what, void *arg);

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
static void
stream_close_socket(struct stream *s)
{
	if (s->bev == NULL)
		return;
	if (s->sock_ev != NULL)
		event_del(s->sock_ev);
	s->splice_left = 0; /* the rest of that frame has nowhere to go: drained as discarded */
	bufferevent_free(s->bev);
	s->bev = NULL;
	s->tx = STREAM_TX_CLOSED;
	s->rx = STREAM_RX_CLOSED;
	if (s->timer != NULL)
		evtimer_del(s->timer);
}

/* Close the pipe end; a terminal's stdin is ended with VEOF, since the pty stays open. */
static void
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
static void
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
static void
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
static void
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

/* Output: the pipe waits for the socket (full, or the rest of a spliced frame). */
static void
stream_pipe_pause_for_socket(struct stream *s)
{
	event_del(s->pipe_ev);
	s->pipe_paused = true;
	event_add(s->sock_ev, NULL);
}

/*
 * Output: read exactly len bytes the pipe is known to hold into the socket's queue, raw (the
 * frame header is already out or queued): the copy path of a frame begun by the direct one.
 */
static void
stream_pipe_take(struct stream *s, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	ssize_t n;

	while (len > 0) {
		n = read(s->pipe_fd, stream_buf, len < sizeof stream_buf ? len : sizeof stream_buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Cannot happen (FIONREAD counted them): the frame cannot be completed. */
			log_warn_id(s->id, s->exec_id, "%s: pipe lost %zu counted byte(s)",
			    stdio_kind_name(s->kind), len);
			stream_fail(s, "output pipe lost counted bytes");
			return;
		}
		evbuffer_add(out, stream_buf, (size_t)n);
		len -= (size_t)n;
	}
}

/*
 * Output: splice the rest of the current frame's payload from the pipe into the socket.
 * Returns the bytes moved; on a full socket the pipe pauses until the socket is writable. A
 * descriptor that refuses splice (AF_VSOCK) switches the stream to copies for good.
 */
static size_t
stream_splice_more(struct stream *s)
{
	size_t moved = 0;
	ssize_t n;

	while (s->splice_left > 0) {
		n = splice(s->pipe_fd, NULL, bufferevent_getfd(s->bev), NULL, s->splice_left,
		    SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			s->splice_left -= (uint32_t)n;
			moved += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			stream_pipe_pause_for_socket(s);
			return moved;
		}
		if (n < 0 && (errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
			log_debug_id(s->id, s->exec_id, "%s: splice refused (%s): copying",
			    stdio_kind_name(s->kind), strerror(errno));
			s->no_splice = true;
		}
		/* Else the socket failed: the bufferevent reports it when it writes these. */
		moved += s->splice_left;
		n = s->splice_left;
		s->splice_left = 0;
		stream_pipe_take(s, (size_t)n);
		break;
	}
	return moved;
}

/*
 * Output, direct path (the socket's queue is empty): FIONREAD says what the pipe holds, and
 * up to STREAM_WRITE_MAX of it becomes one frame, so a writer of small lines costs one frame
 * per wake-up, not per line. A small frame is read and sent in one call; a larger one is its
 * header then the payload spliced from the pipe, never copied through the agent. What the
 * socket does not take is queued in the bufferevent (copied bytes) or left in the pipe
 * (splice_left). Returns the bytes moved, 0 with the pipe paused for a full socket, or -1
 * for the copy path to take over (nothing waiting: EOF or EAGAIN, or a socket error).
 */
static ssize_t
stream_pipe_direct(struct stream *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	int sock = bufferevent_getfd(s->bev);
	uint8_t hdr[STREAM_LEN_SIZE];
	size_t want, len;
	ssize_t n, sent;
	int avail = 0;

	if (ioctl(s->pipe_fd, FIONREAD, &avail) == -1 || avail <= 0)
		return -1;
	want = (size_t)avail < STREAM_WRITE_MAX ? (size_t)avail : STREAM_WRITE_MAX;
	if (want <= STREAM_COPY_MAX || s->no_splice) {
		if (want > sizeof stream_buf - STREAM_LEN_SIZE)
			want = sizeof stream_buf - STREAM_LEN_SIZE;
		do
			n = read(s->pipe_fd, stream_buf + STREAM_LEN_SIZE, want);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return -1;
		stream_len_pack((uint32_t)n, stream_buf);
		len = STREAM_LEN_SIZE + (size_t)n;
		sent = send(sock, stream_buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (sent < 0)
			sent = 0; /* full (queued below) or failed (the bufferevent will say) */
		if ((size_t)sent < len)
			evbuffer_add(out, stream_buf + sent, len - (size_t)sent);
		return n;
	}
	stream_len_pack((uint32_t)want, hdr);
	do
		sent = send(sock, hdr, sizeof hdr, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE);
	while (sent < 0 && errno == EINTR);
	if (sent < 0 && errno == EAGAIN) {
		stream_pipe_pause_for_socket(s);
		return 0;
	}
	if (sent < 0)
		return -1;
	if ((size_t)sent < sizeof hdr) {
		/* Rare: part of the header went; the frame finishes through the queue. */
		evbuffer_add(out, hdr + sent, sizeof hdr - (size_t)sent);
		stream_pipe_take(s, want);
		return (ssize_t)want;
	}
	s->splice_left = (uint32_t)want;
	return (ssize_t)stream_splice_more(s);
}

/*
 * Output: a small frame went out; unless the writer is gone, rest the pipe for STREAM_BATCH_US
 * so what it writes meanwhile goes out as one frame. True when the window started.
 */
static bool
stream_batch_start(struct stream *s)
{
	struct pollfd pfd = {.fd = s->pipe_fd, .events = POLLIN};

	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLERR)) != 0)
		return false;
	if (ptimer_arm(s->batch_tm, STREAM_BATCH_US) < 0)
		return false;
	event_del(s->pipe_ev);
	return true;
}

static void stream_pipe_read_cb(evutil_socket_t fd, short what, void *arg);

/* Output: the batching window ended: read what the pipe gathered. */
static void
stream_batch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	/* Paused: the socket's callbacks resume the pipe; closed: nothing to read. */
	if (s->pipe_closed || s->pipe_paused)
		return;
	event_add(s->pipe_ev, NULL);
	stream_pipe_read_cb(s->pipe_fd, EV_READ, s);
}

/* Output: the socket takes bytes again: finish the spliced frame, then read the pipe again. */
static void
stream_sock_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	if (s->bev == NULL)
		return;
	if (s->splice_left > 0) {
		stream_splice_more(s);
		if (s->splice_left > 0)
			return;
	}
	event_del(s->sock_ev);
	if (s->pipe_paused && !s->pipe_closed) {
		s->pipe_paused = false;
		event_add(s->pipe_ev, NULL);
		if (!s->orphaned)
			proc_grace_update(s->p);
	}
	stream_check(s);
}

/*
 * Output: move pipe bytes into frames. Bounded (the normal case), reading pauses while the
 * socket's queue holds AGENT_STREAM_PENDING; unbounded (detaching), it reads until the pipe is
 * empty (at most STREAM_DETACH_MAX). Returns 1 at the pipe's EOF or error, else 0 (empty or
 * paused). Progress and pausing re-arm or stop the process's drain grace.
 */
static int
stream_pipe_pump(struct stream *s, bool bounded)
{
	struct evbuffer_iovec v;
	struct evbuffer *out;
	size_t total = 0;
	ssize_t n;
	int r;

	if (!bounded && s->bev != NULL && s->splice_left > 0) {
		/* Detaching mid-frame: its payload is still in the pipe, take it first. */
		total = s->splice_left;
		s->splice_left = 0;
		event_del(s->sock_ev);
		stream_pipe_take(s, total);
	}
	for (;;) {
		if (bounded && s->bev != NULL &&
		    evbuffer_get_length(bufferevent_get_output(s->bev)) >= AGENT_STREAM_PENDING) {
			event_del(s->pipe_ev);
			s->pipe_paused = true;
			r = 0;
			break;
		}
		if (!bounded && total >= STREAM_DETACH_MAX) {
			r = 0;
			break;
		}
		if (bounded && s->splice_left > 0) {
			r = 0; /* a spliced frame is on the wire: nothing else may go first */
			break;
		}
		if (bounded && total >= STREAM_TURN_MAX) {
			r = 0; /* more next turn: the pipe event is level-triggered */
			break;
		}
		if (bounded && s->bev != NULL && s->direct &&
		    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
			n = stream_pipe_direct(s);
			if (n > 0 && (size_t)n < STREAM_BATCH_MIN && s->splice_left == 0 &&
			    !s->pipe_paused && stream_batch_start(s)) {
				total += (size_t)n;
				r = 0;
				break;
			}
			if (n > 0) {
				total += (size_t)n;
				if (s->splice_left == 0 && !s->pipe_paused)
					continue;
			}
			if (n >= 0) {
				r = 0; /* paused until the socket is writable */
				break;
			}
			if (s->bev == NULL)
				continue;
		}
		if (s->bev == NULL) {
			/* The socket is gone: drain and discard. */
			n = read(s->pipe_fd, stream_buf, sizeof stream_buf);
			if (n > 0) {
				total += (size_t)n;
				continue;
			}
		} else {
			/* Read straight into the socket's queue, behind room for the length. */
			out = bufferevent_get_output(s->bev);
			if (evbuffer_reserve_space(
				out, STREAM_LEN_SIZE + STREAM_READ_CHUNK, &v, 1) != 1 ||
			    v.iov_len < STREAM_LEN_SIZE + STREAM_READ_CHUNK)
				fatalx("evbuffer_reserve_space");
			n = read(
			    s->pipe_fd, (uint8_t *)v.iov_base + STREAM_LEN_SIZE, STREAM_READ_CHUNK);
			if (n > 0) {
				stream_len_pack((uint32_t)n, v.iov_base);
				v.iov_len = STREAM_LEN_SIZE + (size_t)n;
				evbuffer_commit_space(out, &v, 1);
				total += (size_t)n;
				continue;
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			r = 0;
			break;
		}
		/* EOF, or EIO from a pty whose slave side is gone. */
		if (n < 0 && errno != EIO)
			log_warn_id(s->id, s->exec_id, "read %s: %s", stdio_kind_name(s->kind),
			    strerror(errno));
		r = 1;
		break;
	}
	if (bounded && (total > 0 || s->pipe_paused) && !s->orphaned)
		proc_grace_update(s->p);
	return r;
}

/* Output: the pipe is readable; at its EOF queue ours and see whether we are done. */
static void
stream_pipe_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	if (stream_pipe_pump(s, true) == 0)
		return;
	stream_close_pipe(s);
	stream_send_eof(s);
	stream_check(s);
}

/* The socket's output drained: resume the pipe, and see whether we are done. */
static void
stream_write_cb(struct bufferevent *bev, void *arg)
{
	struct stream *s = arg;

	/* A pause for the direct path (a spliced frame, a full socket) ends in its own callback. */
	if (s->pipe_paused && !s->pipe_closed && s->splice_left == 0 &&
	    (s->sock_ev == NULL || !event_pending(s->sock_ev, EV_WRITE, NULL))) {
		s->pipe_paused = false;
		event_add(s->pipe_ev, NULL);
		if (!s->orphaned)
			proc_grace_update(s->p);
	}
	stream_check(s);
}

/* Stdin: close the pipe once nothing is pending, then send our EOF. */
static void
stream_input_maybe_close(struct stream *s)
{
	if (!s->input_close || evbuffer_get_length(s->pending) > 0)
		return;
	stream_close_pipe(s);
	stream_send_eof(s);
	stream_check(s);
}

/*
 * Stdin: the pipe is full. Wait for it to be writable and stop reading the socket meanwhile
 * (the bufferevent would otherwise read on, 4 KiB per wake-up, up to its watermark).
 */
static void
stream_input_park(struct stream *s)
{
	event_add(s->pipe_ev, NULL);
	if (s->bev != NULL && !s->in_parked) {
		s->in_parked = true;
		bufferevent_disable(s->bev, EV_READ);
	}
}

/* Stdin: the pipe took everything parked: read the socket again. */
static void
stream_input_unpark(struct stream *s)
{
	if (!s->in_parked)
		return;
	s->in_parked = false;
	if (s->bev != NULL)
		bufferevent_enable(s->bev, EV_READ);
}

/* Stdin: write bytes to the pipe; keep what it does not take. Returns false when parked. */
static bool
stream_pipe_write(struct stream *s, const uint8_t *data, size_t len)
{
	ssize_t n;

	if (s->discard || s->pipe_closed)
		return true;
	if (len > 0)
		s->last_in = data[len - 1];
	if (s->pty_wait) {
		/* Parked until the master arrives (the socket stops being read meanwhile). */
		if (len > 0)
			evbuffer_add(s->pending, data, len);
		return len == 0;
	}
	while (len > 0 && evbuffer_get_length(s->pending) == 0) {
		n = write(s->pipe_fd, data, len);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		/* EPIPE: the process closed its stdin; the rest has nowhere to go. */
		log_debug_id(s->id, s->exec_id, "stdin: %s: discarding", strerror(errno));
		s->discard = true;
		evbuffer_drain(s->pending, evbuffer_get_length(s->pending));
		s->input_close = true;
		return true;
	}
	if (len > 0) {
		evbuffer_add(s->pending, data, len);
		stream_input_park(s);
		return false;
	}
	return true;
}

/* Stdin: the pipe is writable again. */
static void
stream_pipe_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	struct evbuffer_iovec v;
	ssize_t n;

	while (evbuffer_get_length(s->pending) > 0) {
		evbuffer_peek(s->pending, -1, NULL, &v, 1);
		n = write(s->pipe_fd, v.iov_base, v.iov_len);
		if (n > 0) {
			evbuffer_drain(s->pending, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		s->discard = true;
		s->input_close = true;
		evbuffer_drain(s->pending, evbuffer_get_length(s->pending));
	}
	event_del(s->pipe_ev);
	stream_input_unpark(s);
	stream_input_maybe_close(s);
	if (s->bev != NULL) {
		stream_input(s);
		stream_input_bulk(s);
	}
}

/* Consume framed input from the socket. */
static void
stream_input(struct stream *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	enum stream_result r;
	struct evbuffer_iovec v;
	const uint8_t *data;
	size_t used, dlen;

	while (s->bev != NULL && evbuffer_get_length(in) > 0) {
		if (s->kind == STDIO_IN && evbuffer_get_length(s->pending) > 0)
			return; /* parked: resume from stream_pipe_write_cb */
		evbuffer_peek(in, -1, NULL, &v, 1);
		r = stream_decoder_feed(&s->dec, v.iov_base, v.iov_len, &used, &data, &dlen);
		if (r == STREAM_ERROR) {
			stream_fail(s,
			    s->dec.eof ? "data after EOF" : "frame length over 10 MiB (10485760)");
			return;
		}
		if (r == STREAM_DATA) {
			if (s->kind == STDIO_IN)
				stream_pipe_write(s, data, dlen);
			/* Data on an output stream has nowhere to go: ignored. */
		}
		evbuffer_drain(in, used);
		if (r == STREAM_EOF) {
			s->rx = STREAM_RX_EOF;
			if (s->kind == STDIO_IN) {
				s->input_close = true;
				stream_input_maybe_close(s);
			}
			stream_check(s);
		}
	}
}

/* VMSHIM_IO_COPY=1 in the environment forces the copy path (tests of the fallback). */
static bool
stream_copy_forced(void)
{
	static int forced = -1;
	const char *v;

	if (forced < 0) {
		v = getenv("VMSHIM_IO_COPY");
		forced = v != NULL && strcmp(v, "1") == 0;
	}
	return forced == 1;
}

/*
 * Output: a real pipe (not a pty) takes the direct path; it is enlarged so a frame can be
 * filled from what the process wrote meanwhile (best effort: the size is a hint).
 */
static bool
stream_is_pipe(int fd)
{
	struct stat sb;

	return fd >= 0 && fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode);
}

static void
stream_output_setup(struct stream *s)
{
	if (!stream_is_pipe(s->pipe_fd))
		return;
	(void)fcntl(s->pipe_fd, F_SETPIPE_SZ, STREAM_PIPE_SIZE);
	s->direct = true;
	s->no_splice = stream_copy_forced();
	s->sock_ev = event_new(
	    agent.base, bufferevent_getfd(s->bev), EV_WRITE | EV_PERSIST, stream_sock_write_cb, s);
	s->batch_tm = ptimer_new(agent.base, stream_batch_cb, s);
	if (s->sock_ev == NULL)
		fatalx("event_new");
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

/* Stdin: the current frame's payload can be spliced (nothing read or parked before it). */
static bool
stream_input_can_splice(struct stream *s)
{
	return s->splice_in && !s->discard && !s->pipe_closed && s->pipe_fd >= 0 &&
	       evbuffer_get_length(s->pending) == 0 &&
	       evbuffer_get_length(bufferevent_get_input(s->bev)) == 0 &&
	       stream_decoder_payload_left(&s->dec) > 0;
}

/*
 * Stdin: splice the current frame's payload from the socket into the process's pipe, never
 * through our memory. Returns 1 after progress, 0 to wait (the socket is empty, or the pipe
 * is full: parked), -1 for the read path to carry on (the socket's EOF or error, the
 * process closed its stdin, or splice refused: then copies for good).
 */
static int
stream_input_splice(struct stream *s)
{
	ssize_t n;
	int avail = 0;

	if (stream_decoder_payload_left(&s->dec) >= STREAM_COPY_MAX)
		s->in_hdr_only = true;
	n = splice(bufferevent_getfd(s->bev), NULL, s->pipe_fd, NULL,
	    stream_decoder_payload_left(&s->dec), SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	if (n > 0) {
		stream_decoder_skip(&s->dec, (uint32_t)n);
		return 1;
	}
	if (n < 0 && errno == EINTR)
		return 1;
	if (n < 0 && errno == EAGAIN) {
		/* Bytes waiting in the socket mean the pipe is full. */
		if (ioctl(bufferevent_getfd(s->bev), FIONREAD, &avail) == 0 && avail > 0)
			stream_input_park(s);
		return 0;
	}
	if (n < 0 && errno == EPIPE) {
		/* The process closed its stdin: the rest is read and dropped. */
		log_debug_id(s->id, s->exec_id, "stdin: %s: discarding", strerror(errno));
		s->discard = true;
		s->input_close = true;
	} else if (n < 0 && (errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
		log_debug_id(
		    s->id, s->exec_id, "stdin: splice refused (%s): copying", strerror(errno));
		s->splice_in = false;
	}
	return -1;
}

/*
 * Stdin: read the socket directly in big chunks. A bufferevent reads at most 4 KiB per call
 * (libevent 2.1's EVBUFFER_MAX_READ), which made one pipe write, and one wake-up of the
 * process, per 4 KiB. This tops the input buffer up to AGENT_STREAM_PENDING while the pipe
 * takes it; EOF and errors go to stream_event_cb as the bufferevent would report them.
 */
static void
stream_input_bulk(struct stream *s)
{
	struct evbuffer *in;
	struct evbuffer_iovec v;
	size_t want;
	ssize_t n;
	int r;

	while (s->bev != NULL && s->phase == STREAM_ACTIVE && s->kind == STDIO_IN &&
	       s->rx == STREAM_RX_OPEN && evbuffer_get_length(s->pending) == 0) {
		if (s->in_parked)
			return;
		if (stream_input_can_splice(s)) {
			r = stream_input_splice(s);
			if (r > 0)
				continue;
			if (r == 0)
				return;
			if (s->discard)
				stream_input_maybe_close(s);
			if (s->bev == NULL)
				return;
		}
		in = bufferevent_get_input(s->bev);
		if (evbuffer_get_length(in) >= AGENT_STREAM_PENDING)
			return;
		/* The bufferevent freezes its input's end; it thaws it the same way to read. */
		evbuffer_unfreeze(in, 0);
		if (evbuffer_reserve_space(in, STREAM_READ_CHUNK, &v, 1) < 1) {
			evbuffer_freeze(in, 0);
			return;
		}
		/*
		 * After a big spliced payload only the next header is read, so the next payload
		 * is spliced too rather than read here in part and copied (as the shim does).
		 */
		want = s->splice_in && s->in_hdr_only ? STREAM_LEN_SIZE : v.iov_len;
		n = read(bufferevent_getfd(s->bev), v.iov_base, want);
		if (n > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(in, &v, 1);
		}
		evbuffer_freeze(in, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			stream_event_cb(s->bev,
			    BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), s);
			return;
		}
		stream_input(s);
		if (want == STREAM_LEN_SIZE &&
		    stream_decoder_payload_left(&s->dec) < STREAM_COPY_MAX)
			s->in_hdr_only = false; /* small frames again: read them by the chunk */
	}
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

/*
 * Stdin whose EOF we already received: the shim may close the connection (its half-closed
 * timeout) before we echoed that EOF, because the process has not read everything yet. All
 * the input is here, so this is not a failure: drop the socket, keep writing what is pending
 * into the pipe, and close the pipe once it is through (stream_input_maybe_close).
 */
static bool
stream_input_complete_close(struct stream *s)
{
	if (s->phase != STREAM_ACTIVE || s->kind != STDIO_IN || s->rx != STREAM_RX_EOF ||
	    s->discard || s->pipe_closed)
		return false;
	log_debug_id(s->id, s->exec_id,
	    "stdin: the connection closed after its EOF; %zu byte(s) still go to the process",
	    evbuffer_get_length(s->pending));
	stream_close_socket(s);
	s->input_close = true;
	stream_input_maybe_close(s);
	return true;
}

/* The socket hit EOF or an error: the stream failed. */
static void
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
