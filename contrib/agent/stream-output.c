/*
 * stream-output.c: a process's stdout or stderr, from its pipe to the stream socket.
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
 * Bulk: both directions move up to 256 KiB per system call (stdin reads the socket itself,
 * stream_input_bulk(); stdout reads the pipe straight into the socket's queue), since
 * libevent's 4 KiB/16 KiB defaults cost one process wake-up per 4 KiB.
 *
 * Zero copy (docs/ARCHITECTURE.md): while the socket's queue is empty, frames go straight
 * out: FIONREAD sizes a frame (up to 1 MiB), its header is sent, its payload moved from the
 * pipe into the stream's frame pipe (pipe to pipe, at once) and spliced from there into the
 * socket (splice_left: what is still in the frame pipe; nothing else may be written until it
 * is through), so the writer never waits for the socket behind its pipe's lock. A small frame
 * from a writer still attached starts a batching window (batch_tm, a timerfd: ptimer.h)
 * instead of watching the pipe, unless the frame before it found the pipe at least half full
 * (bulk: a fast writer's tail). A pty, or splice refused, takes the copy path.
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

static uint8_t stream_buf[STREAM_READ_CHUNK];

/* Output: the pipe waits for the socket (full, or the rest of a spliced frame). */
static void
stream_pipe_pause_for_socket(struct stream *s)
{
	event_del(s->pipe_ev);
	s->pipe_paused = true;
	event_add(s->sock_ev, NULL);
}

/*
 * Output: read exactly len bytes that fd (the process's pipe, or the frame pipe) is known to
 * hold into the socket's queue, raw (the frame header is already out or queued): the copy
 * path of a frame begun by the direct one.
 */
static void
stream_pipe_take(struct stream *s, int fd, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	ssize_t n;

	while (len > 0) {
		n = read(fd, stream_buf, len < sizeof stream_buf ? len : sizeof stream_buf);
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
 * Output: the frame pipe, made on the first spliced frame. A spliced frame's payload is moved
 * out of the process's pipe into it (pipe to pipe: page references, no copy, one short hold
 * of the process pipe's lock), then spliced from there into the socket at the socket's pace.
 * Splicing from the process's pipe straight into the socket held that pipe's lock for the
 * whole send, and the writer waited behind it (docs/PERFORMANCE.md). False when it cannot be
 * made: frames are copied instead.
 */
/* VMSHIM_TEST_FRAME_PIPE=BYTES sets the frame pipe's size (tests of frames taken in steps). */
static int
stream_frame_pipe_size(void)
{
	static int size = -1;
	const char *v;

	if (size < 0) {
		v = getenv("VMSHIM_TEST_FRAME_PIPE");
		size = v != NULL && atoi(v) > 0 ? atoi(v) : STREAM_FRAME_PIPE_SIZE;
	}
	return size;
}

static bool
stream_frame_pipe_ready(struct stream *s)
{
	int fds[2];

	if (s->frame_rd >= 0)
		return true;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		/* Once per stream: retrying (and logging) on every big frame would flood the log.
		 */
		log_warn_id(s->id, s->exec_id, "%s: frame pipe: %s: copying from now on",
		    stdio_kind_name(s->kind), strerror(errno));
		s->no_splice = true;
		return false;
	}
	/* Best effort: a smaller frame pipe only takes a frame in more steps. */
	(void)fcntl(fds[1], F_SETPIPE_SZ, stream_frame_pipe_size());
	s->frame_rd = fds[0];
	s->frame_wr = fds[1];
	return true;
}

void
stream_frame_pipe_close(struct stream *s)
{
	s->frame_held = 0;
	if (s->frame_rd < 0)
		return;
	close(s->frame_rd);
	close(s->frame_wr);
	s->frame_rd = s->frame_wr = -1;
}

/*
 * Output: the spliced frame cannot go on (splice refused, the socket failed, detaching): the
 * rest of its payload is copied into the socket's queue, the frame pipe's part first, then
 * what is still in the process's pipe. Returns how many bytes that was.
 */
static size_t
stream_frame_take_rest(struct stream *s)
{
	size_t held = s->frame_held, rest = s->splice_left - s->frame_held;

	s->splice_left = 0;
	s->frame_held = 0;
	stream_pipe_take(s, s->frame_rd, held);
	if (s->bev != NULL)
		stream_pipe_take(s, s->pipe_fd, rest);
	return held + rest;
}

/*
 * Output: splice the rest of the current frame's payload into the socket, through the frame
 * pipe: whenever it is empty, what is left of the frame (counted in the process's pipe by
 * FIONREAD, so there) is moved into it. Returns the bytes moved into the socket; on a full
 * socket the pipe pauses until the socket is writable. A descriptor that refuses splice
 * (AF_VSOCK) switches the stream to copies for good.
 */
static size_t
stream_splice_more(struct stream *s)
{
	size_t moved = 0;
	ssize_t n;

	while (s->splice_left > 0) {
		if (s->frame_held == 0) {
			n = splice(s->pipe_fd, NULL, s->frame_wr, NULL, s->splice_left,
			    SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* Cannot happen (the bytes were counted): copy them instead. */
				log_warn_id(s->id, s->exec_id, "%s: frame pipe fill: %s: copying",
				    stdio_kind_name(s->kind), n < 0 ? strerror(errno) : "EOF");
				moved += stream_frame_take_rest(s);
				break;
			}
			s->frame_held = (uint32_t)n;
		}
		n = splice(s->frame_rd, NULL, bufferevent_getfd(s->bev), NULL, s->frame_held,
		    SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			s->frame_held -= (uint32_t)n;
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
		moved += stream_frame_take_rest(s);
		if (s->no_splice && s->bev != NULL)
			stream_frame_pipe_close(s); /* never used again: give back its quota */
		break;
	}
	return moved;
}

/*
 * Output, direct path (the socket's queue is empty): FIONREAD says what the pipe holds, and
 * up to STREAM_WRITE_MAX of it becomes one frame, so a writer of small lines costs one frame
 * per wake-up, not per line. A small frame is read and sent in one call; a larger one is its
 * header then the payload spliced through the frame pipe, never copied through the agent.
 * What the socket does not take is queued in the bufferevent (copied bytes) or left in the
 * frame pipe and the pipe (splice_left). Returns the bytes moved, 0 with the pipe paused for a full
 * socket, or -1 for the copy path to take over (nothing waiting: EOF or EAGAIN, or a socket error).
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
	if (want <= STREAM_COPY_MAX || s->no_splice || !stream_frame_pipe_ready(s)) {
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
		stream_pipe_take(s, s->pipe_fd, want);
		return (ssize_t)want;
	}
	s->splice_left = (uint32_t)want;
	s->bulk = (size_t)avail >= STREAM_BULK_MIN;
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

	if (s->bulk) {
		/*
		 * What a fast writer added while its big frame went out: waiting would only idle
		 * the chain (the writer was blocked on the full pipe, not slow). The next small
		 * frame, if any, starts a window.
		 */
		s->bulk = false;
		return false;
	}
	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLERR)) != 0)
		return false;
	if (ptimer_arm(s->batch_tm, STREAM_BATCH_US) < 0)
		return false;
	event_del(s->pipe_ev);
	return true;
}

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
int
stream_pipe_pump(struct stream *s, bool bounded)
{
	struct evbuffer_iovec v;
	struct evbuffer *out;
	size_t total = 0;
	ssize_t n;
	int r;

	if (!bounded && s->bev != NULL && s->splice_left > 0) {
		/* Detaching mid-frame: its payload goes first. */
		event_del(s->sock_ev);
		total = stream_frame_take_rest(s);
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
void
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
void
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

/* VMSHIM_IO_COPY=1 in the environment forces the copy path (tests of the fallback). */
bool
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
bool
stream_is_pipe(int fd)
{
	struct stat sb;

	return fd >= 0 && fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode);
}

void
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
