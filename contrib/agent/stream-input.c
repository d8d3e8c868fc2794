/*
 * stream-input.c: a process's stdin, from the stream socket to its pipe.
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
 * Zero copy (docs/ARCHITECTURE.md; stdout's side is in stream-output.c): stdin payloads are
 * spliced from the socket into the pipe; a full pipe parks the stream (in_parked: the socket
 * is not read). A pty, or splice refused, takes the copy path.
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

/* Stdin: close the pipe once nothing is pending, then send our EOF. */
void
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
void
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
void
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
void
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
void
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

/*
 * Stdin whose EOF we already received: the shim may close the connection (its half-closed
 * timeout) before we echoed that EOF, because the process has not read everything yet. All
 * the input is here, so this is not a failure: drop the socket, keep writing what is pending
 * into the pipe, and close the pipe once it is through (stream_input_maybe_close).
 */
bool
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
