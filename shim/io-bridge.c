/*
 * io-bridge.c: the loop-thread half of the stdio data plane.
 *
 * io_start() takes the descriptors io_prepare() opened and bridges them with plain libevent
 * events and one evbuffer per stream; everything here runs on the loop thread that owns the
 * event_base (no thread per stream, no polling). One struct io_streams owns up to three
 * struct io_stream (stdin, stdout, stderr), their descriptors, events and buffers; io_free()
 * releases all of it.
 *
 * Data:
 *  - stdin: the host FIFO is read IO_READ_CHUNK at a time straight into the evbuffer as one
 *    frame (length prefix + bytes), so frames are at most IO_READ_CHUNK <= STREAM_WRITE_MAX;
 *    the buffer is sent to the guest with send(MSG_NOSIGNAL).
 *  - stdout/stderr: the guest socket is read into a scratch buffer and fed to the stream
 *    decoder, which hands back slices (an announced length is never allocated); a slice is
 *    written straight to the host fd when nothing is queued before it, and what the host does
 *    not take is appended to the evbuffer and written later (FIFO: non-blocking with EV_WRITE;
 *    regular file: synchronously, files are never "not ready").
 *  - Zero copy (the fast path, docs/ARCHITECTURE.md): with a FIFO as the host side, a frame's
 *    payload is spliced between the guest socket and the FIFO and never enters our memory.
 *    Stdout: after a big spliced frame only the next header is read; a FIFO without room is
 *    IO_HOST_FULL (the socket is left unread). Stdin: FIONREAD sizes a frame, its header is
 *    sent, its payload spliced (tx_left: what is still in the FIFO; nothing else may be sent
 *    until it is through, and an EOF or CloseIO first reads it into the buffer). Small amounts
 *    take the copy path above; a small stdin read from a writer still attached rests the FIFO
 *    for a batching window (IO_HOST_RESTING), timed by a timerfd (ptimer.h: libevent's own
 *    timers run 1-4 ms late, long enough for a writer to fill the FIFO and stall), unless the
 *    frame before it found the FIFO at least half full (bulk: a fast writer's tail, for which
 *    a window only idles the chain). While copied bytes wait in the buffer for the socket, the
 *    FIFO is not read, so the next frame is spliced rather than copied. Splice refused: copies
 *    for good.
 *  - Backpressure: a source is read only while one more read fits under IO_STREAM_BUFFER_MAX
 *    (io.h), so each stream holds at most that much; a full sink leaves the source unread and
 *    the kernel's buffers push back on the writer at the far end.
 *
 * EOF and closing (docs/PROTOCOL.md section 3; data in flight is never
 * lost to a shutdown, a half-close or a descriptor closed under a user). Each stream has one state
 * per direction, named as in the agent (frame.h): tx, our frames to the guest (OPEN, EOF_QUEUED,
 * EOF_SENT), rx, the guest's frames (OPEN, EOF), both CLOSED once the guest fd is closed; and
 * the host side (OPEN; stdin only: DRAINING, reading what the FIFO held at CloseIO; CLOSED).
 * Each only moves forward. io_stream_update() derives everything else from them after every
 * change:
 *  - the guest fd is closed only once EOF was both sent and received, or the stream failed
 *    (protocol error, hang-up, socket error) or stayed half-closed for the timeout; never
 *    shutdown(). Stdin after our EOF is not "stuck" while the process lives: the agent echoes
 *    our EOF only once it wrote every byte into the process, which takes as long as the
 *    process leaves its stdin unread, so that timeout starts when the process is gone.
 *  - stdin: the FIFO's EOF, io_close_stdin() or the guest's EOF on stdin (the process's stdin
 *    is closed, nothing more would be used) close the FIFO and queue our EOF frame behind the
 *    bytes already read, so it goes out after all of them. io_close_stdin() first reads what
 *    the FIFO holds at that moment (FIONREAD), so nothing written before CloseIO is lost.
 *  - stdout/stderr: our EOF went out with the hello (io-prepare.c); the guest's EOF closes the
 *    guest fd, and the host fd is closed once every byte before it was written. A failed host
 *    write is logged once, the rest of that output is discarded, and the guest stream is still
 *    read until its EOF so the agent is never stuck. A failed guest stream still flushes what
 *    it delivered before failing, and then counts as finished so the exit is never held.
 *  - an output FIFO that still holds bytes when its last byte is written keeps the stream
 *    unfinished (IO_HOST_EMPTYING) until the runtime has read it out (FIONREAD, looked at on a
 *    backing-off timer): a runtime may close its reader at the exit without reading to EOF.
 *    Meanwhile the shim holds a write-only end (its O_RDWR end would count as a reader), so
 *    a FIFO whose reader has gone (POLLERR) ends the wait at once.
 *  - on_output_done is called once, from its own event on a later loop iteration (never from
 *    inside io_start() or from a stream callback), when every output stream is finished.
 *  - Drain deadline: our EOF went out with the hello, so the half-closed timer never covers
 *    stdout/stderr, and a host FIFO nobody reads would stop us reading the guest (backpressure)
 *    and its EOF would never arrive. Once the task code reports the exit (io_exit_seen), the
 *    output has half_closed_ms to finish, renewed while the host keeps taking bytes; past it
 *    the unfinished output streams are failed (buffer dropped, descriptors closed once, logged
 *    at warn with the container id), so the exit is published and Delete can proceed.
 *  - Exit pending: the reference agent publishes the exit only after the output drained, so
 *    with a host nobody reads it never would; it announces the reaping first
 *    (io_exit_pending). That starts the same deadline, renewed while the host takes bytes or
 *    while nothing waits for the host (the guest is slow, e.g. a descendant holding the pipe).
 *    Past it the host side of every stream the host left bytes in is given up (buffer dropped,
 *    host fd closed once, logged at warn) while the guest side stays open and is read and
 *    discarded to its EOF, so the agent's stream drains, it publishes the exit and the stream
 *    ends cleanly (EOF both ways). The exit (io_exit_seen) then re-arms the deadline once more,
 *    bounding an agent that reports the exit but never sends the EOF.
 *
 * Stdin EOF design. The FIFO is read-only and non-blocking (io-prepare.c), so read() returns 0
 * whenever no writer is attached, including before the runtime ever opened its end. We only
 * read() when the loop reports the FIFO readable, and Linux reports a FIFO's read end readable
 * (POLLIN/POLLHUP, for epoll, poll and select alike) only when it holds data or when a writer
 * that appeared after our open() has gone: a FIFO nobody has opened yet never wakes us. So a
 * read() of 0 after a wake-up is the runtime closing its writer: real EOF. Holding a dummy
 * writer, or opening O_RDWR, would have avoided the spurious-EOF question but would never see
 * the runtime's close at all, so neither is done.
 *
 * Lifetime: the loop thread is the only one that touches an io_streams. Stream callbacks never
 * call out of this file except through the done event, so io_free() can only run from outside
 * our stack or from inside on_output_done; for the latter, the done callback holds a busy count
 * and io_free() then only tears down (closes fds, frees events, so no callback can follow) and
 * leaves the final free to the callback's exit. A stream whose fds are closed keeps its struct
 * and (deleted) events until io_free().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "frame.h"
#include "io-int.h"
#include "io.h"
#include "log.h"
#include "ptimer.h"
#include "util.h"

#define IO_SEND_IOV 16 /* iovecs per send to the guest */
/* One guest callback moves at most this much, so a busy stream cannot starve the loop. */
#define IO_TURN_MAX (4u * STREAM_WRITE_MAX)
/*
 * Stdin: a read smaller than this, from a writer still attached, rests the FIFO for
 * IO_BATCH_US, so a writer of small lines costs one wake-up and one frame per window, not
 * per line. A writer gone (POLLHUP: its EOF is there to read) is never waited for.
 */
#define IO_BATCH_MIN (16u * 1024)
#define IO_BATCH_US  500
/*
 * A FIFO found holding this much (half of IO_PIPE_SIZE) has a writer that outruns us, not a
 * slow one: the small read that may follow its frame starts no batching window.
 */
#define IO_BULK_MIN (512u * 1024)
/*
 * An output FIFO the runtime has not emptied when the output ends is looked at again after
 * IO_EMPTY_MIN_US, doubling up to IO_EMPTY_MAX_US once the process has exited (the exit waits
 * for it), or up to IO_EMPTY_IDLE_US while it runs (only the runtime's EOF waits). A libevent
 * timer (no descriptor; it fires up to a few ms late, which only delays that exit a little).
 */
#define IO_EMPTY_MIN_US	 50
#define IO_EMPTY_MAX_US	 2000
#define IO_EMPTY_IDLE_US 100000
/* Stdin waiting in the FIFO up to this much is copied (one read, one send); more is spliced. */
#define IO_SPLICE_MIN_IN (16u * 1024)
/* A spliced stdin frame: its payload can always be taken back into the buffer (bound). */
#define IO_SPLICE_FRAME_IN (IO_STREAM_BUFFER_MAX - 2 * STREAM_LEN_SIZE)
/* A spliced payload this big makes the next guest read take only the frame header. */
#define IO_SPLICE_BIG (32u * 1024)
/* Host FIFOs are enlarged to this (best effort), so a splice moves a whole frame at once. */
#define IO_PIPE_SIZE (1024 * 1024)

struct io_streams;

/* The runtime's side of a stream: the host FIFO (or file). */
enum io_host {
	IO_HOST_OPEN,
	IO_HOST_FULL,	  /* output: a splice found the FIFO full; wait until it takes more */
	IO_HOST_RESTING,  /* stdin: a small read from a writer still there: batching window */
	IO_HOST_DRAINING, /* stdin: CloseIO came; read close_left more bytes, then EOF */
	IO_HOST_EMPTYING, /* output: all in the FIFO; wait until the runtime has read it out */
	IO_HOST_CLOSED,	  /* hfd closed (EOF, CloseIO, a failed write, given up) */
};

/* What the task code told us about the process; each step only moves forward. */
enum io_proc {
	IO_PROC_RUNNING,
	IO_PROC_PENDING, /* the agent's exit-pending notice: reaped, output still draining */
	IO_PROC_EXITED,	 /* the exit itself */
};

/* The streams as a whole: on_output_done fires once, io_free() ends them. */
enum io_phase {
	IO_PHASE_FLOWING,
	IO_PHASE_OUTPUT_DONE, /* every output stream finished; ev_done scheduled */
	IO_PHASE_FREED,	      /* io_free() ran (the struct lives on while busy) */
};

struct io_stream {
	struct io_streams *owner;
	enum io_kind kind;
	bool present;
	int gfd; /* guest socket, non-blocking; -1 once closed */
	int hfd; /* host FIFO or file; -1 once closed */
	bool host_is_file;
	struct event *ev_gread;
	struct event *ev_gwrite;
	struct event *ev_hread;	 /* stdin only */
	struct event *ev_hwrite; /* stdout/stderr to a FIFO only */
	struct event *ev_timer;	 /* half-closed timeout */
	struct ptimer *batch_tm; /* stdin: the end of a batching window (IO_HOST_RESTING) */
	struct event *ev_empty;	 /* output FIFO, IO_HOST_EMPTYING: look at FIONREAD again */
	unsigned empty_us;	 /* ... after this long (doubling) */
	int unread;		 /* ... what the FIFO held at the last look */
	struct evbuffer *buf;	 /* bytes for the sink, at most IO_STREAM_BUFFER_MAX */
	struct stream_decoder dec;
	enum stream_tx tx; /* output: EOF_SENT from the start (with the hello) */
	enum stream_rx rx;
	enum io_host host;
	size_t close_left; /* stdin, IO_HOST_DRAINING: bytes still to be read */
	bool splice;	   /* FIFO payloads are spliced to/from the socket (else copied) */
	uint32_t tx_left;  /* stdin: payload of the frame on the wire still in the FIFO */
	bool gfull; /* stdin: a frame could not start (socket full): FIFO unread till it drains */
	bool bulk;  /* stdin: the last frame found IO_BULK_MIN waiting: do not batch its tail */
	size_t gread_want; /* next guest read: a whole chunk, or only a header after a splice */
};

struct io_streams {
	struct event_base *base;
	char *id;
	char *exec_id;
	struct io_stream st[IO_NSTREAMS];
	uint8_t *scratch; /* IO_READ_CHUNK bytes for guest reads */
	struct event *ev_done;
	void (*on_output_done)(void *arg);
	void *arg;
	enum io_phase phase;
	enum io_proc proc;
	int busy; /* inside on_output_done; FREED while busy frees on the way out */
	int half_closed_ms;
	int batch_us; /* stdin batching window, IO_BATCH_US unless VMSHIM_IO_BATCH_US says */
	struct event *ev_drain; /* io_exit_pending/seen(): the output's drain deadline */
	uint64_t host_written;	/* output bytes the host took, ever */
	uint64_t drain_mark;	/* host_written when the drain deadline was last armed */
};

static atomic_size_t io_buffered_total;
static atomic_int io_half_closed_ms = IO_HALF_CLOSED_TIMEOUT_MS;

static void io_stream_update(struct io_stream *st);

size_t
io_buffered_bytes(void)
{
	return atomic_load_explicit(&io_buffered_total, memory_order_relaxed);
}

void
io_set_half_closed_timeout_ms(int ms)
{
	atomic_store(&io_half_closed_ms, ms > 0 ? ms : IO_HALF_CLOSED_TIMEOUT_MS);
}

/* Every change to a stream buffer is mirrored in the global count io_buffered_bytes() reads. */
static void
io_buffer_count(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	(void)arg;
	if (info->n_added > 0)
		atomic_fetch_add_explicit(&io_buffered_total, info->n_added, memory_order_relaxed);
	if (info->n_deleted > 0)
		atomic_fetch_sub_explicit(
		    &io_buffered_total, info->n_deleted, memory_order_relaxed);
}

static const char *
io_stream_name(const struct io_stream *st)
{
	return io_kind_name(st->kind);
}

static void
io_stream_discard(struct io_stream *st)
{
	evbuffer_drain(st->buf, evbuffer_get_length(st->buf));
}

static void
io_event_del(struct event *ev)
{
	if (ev != NULL)
		event_del(ev);
}

/* Close the guest socket once; what was still queued for it can no longer be sent. */
static void
io_stream_close_guest(struct io_stream *st)
{
	if (st->gfd == -1)
		return;
	io_event_del(st->ev_gread);
	io_event_del(st->ev_gwrite);
	io_event_del(st->ev_timer);
	close(st->gfd);
	st->gfd = -1;
	st->tx_left = 0;
	st->gfull = false;
	st->tx = STREAM_TX_CLOSED;
	st->rx = STREAM_RX_CLOSED;
	if (st->kind == IO_STDIN)
		io_stream_discard(st);
}

/*
 * Stdin: the payload of the frame on the wire still in the FIFO (counted, so there) is read
 * into the buffer, raw behind its header: the frame then ends through the copy path.
 */
static void
io_stream_take_input(struct io_stream *st)
{
	struct io_streams *s = st->owner;
	struct evbuffer_iovec vec;
	ssize_t n;

	while (st->tx_left > 0) {
		if (evbuffer_reserve_space(st->buf, st->tx_left, &vec, 1) != 1 ||
		    vec.iov_len < st->tx_left)
			fatalx("evbuffer_reserve_space");
		n = read(st->hfd, vec.iov_base, st->tx_left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Cannot happen (FIONREAD counted them): the frame cannot be completed. */
			log_warn_id(s->id, s->exec_id, "stdin: the FIFO lost %u counted byte(s)",
			    st->tx_left);
			io_stream_close_guest(st);
			return;
		}
		vec.iov_len = (size_t)n;
		evbuffer_commit_space(st->buf, &vec, 1);
		st->tx_left -= (uint32_t)n;
	}
}

/* Close the host descriptor once; an output stream's unwritten bytes are dropped with it. */
static void
io_stream_close_host(struct io_stream *st)
{
	if (st->hfd == -1)
		return;
	if (st->kind == IO_STDIN)
		io_stream_take_input(st);
	io_event_del(st->ev_hread);
	io_event_del(st->ev_hwrite);
	if (st->batch_tm != NULL)
		ptimer_disarm(st->batch_tm);
	if (st->ev_empty != NULL)
		io_event_del(st->ev_empty);
	close(st->hfd);
	st->hfd = -1;
	st->host = IO_HOST_CLOSED;
	if (st->kind != IO_STDIN)
		io_stream_discard(st);
}

/* A guest-side failure: log it, close the guest socket (and stdin's FIFO), carry on. */
static void
io_stream_fail(struct io_stream *st, const char *why, int err)
{
	struct io_streams *s = st->owner;

	if (err != 0)
		log_warn_id(s->id, s->exec_id, "%s stream failed: %s: %s", io_stream_name(st), why,
		    strerror(err));
	else
		log_warn_id(s->id, s->exec_id, "%s stream failed: %s", io_stream_name(st), why);
	io_stream_close_guest(st);
	if (st->kind == IO_STDIN)
		io_stream_close_host(st);
	io_stream_update(st);
}

/* Stdin is over (FIFO EOF, CloseIO or the guest's EOF): stop reading, queue our EOF frame. */
static void
io_stream_end_stdin(struct io_stream *st)
{
	static const uint8_t eof[STREAM_LEN_SIZE];

	io_stream_close_host(st);
	if (st->tx == STREAM_TX_OPEN) {
		evbuffer_add(st->buf, eof, sizeof eof);
		st->tx = STREAM_TX_EOF_QUEUED;
	}
}

/* Send as much of the stdin buffer to the guest as the socket takes. */
static void
io_stream_flush_guest(struct io_stream *st)
{
	struct iovec iov[IO_SEND_IOV];
	struct msghdr msg;
	ssize_t n;
	int niov;

	/* Behind a frame still being spliced, nothing may go out. */
	while (st->gfd != -1 && st->tx_left == 0 && evbuffer_get_length(st->buf) > 0) {
		niov = evbuffer_peek(st->buf, -1, NULL, (struct evbuffer_iovec *)iov, IO_SEND_IOV);
		if (niov > IO_SEND_IOV)
			niov = IO_SEND_IOV;
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)niov;
		n = sendmsg(st->gfd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			io_stream_fail(st, "writing to the guest", errno);
			return;
		}
		evbuffer_drain(st->buf, (size_t)n);
	}
}

/*
 * Write as much of an output buffer to the host as it takes. A write error other than EAGAIN
 * ends the host side: logged once, the rest is discarded, the guest is still consumed.
 */
static void
io_stream_flush_host(struct io_stream *st)
{
	struct io_streams *s = st->owner;
	int n;

	while (st->hfd != -1 && evbuffer_get_length(st->buf) > 0) {
		n = evbuffer_write_atmost(st->buf, st->hfd, -1);
		if (n > 0) {
			s->host_written += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !st->host_is_file)
			return;
		log_warn_id(s->id, s->exec_id,
		    "%s: writing to the host failed: %s; discarding "
		    "the rest of the output",
		    io_stream_name(st), n < 0 ? strerror(errno) : "no progress");
		io_stream_close_host(st);
	}
}

/* Bytes a source may still add to the buffer before reaching IO_STREAM_BUFFER_MAX. */
static size_t
io_stream_room(const struct io_stream *st)
{
	size_t pending = evbuffer_get_length(st->buf);

	return pending >= IO_STREAM_BUFFER_MAX ? 0 : IO_STREAM_BUFFER_MAX - pending;
}

/* An output stream is finished once both its sides are closed: nothing more can happen. */
static bool
io_stream_finished(const struct io_stream *st)
{
	return st->tx == STREAM_TX_CLOSED && st->host == IO_HOST_CLOSED;
}

/* Arm the next look at an emptying FIFO. */
static void
io_stream_empty_rearm(struct io_stream *st)
{
	unsigned max = st->owner->proc == IO_PROC_RUNNING ? IO_EMPTY_IDLE_US : IO_EMPTY_MAX_US;
	struct timeval tv = {0, 0};

	st->empty_us = st->empty_us == 0 ? IO_EMPTY_MIN_US : st->empty_us * 2;
	if (st->empty_us > max)
		st->empty_us = max;
	tv.tv_usec = (suseconds_t)st->empty_us;
	event_add(st->ev_empty, &tv);
}

/*
 * What the FIFO still holds for a reader, or 0 when there is nothing to wait for: it is empty,
 * or no reader is left (POLLERR on a write-only end: nobody will ever read those bytes).
 */
static int
io_stream_unread(const struct io_stream *st)
{
	struct pollfd p = {.fd = st->hfd, .events = POLLOUT};
	int unread = 0;

	if (ioctl(st->hfd, FIONREAD, &unread) < 0 || unread <= 0)
		return 0;
	if (poll(&p, 1, 0) < 0 || (p.revents & POLLERR) != 0)
		return 0;
	return unread;
}

/*
 * Everything is in the host FIFO. The runtime may close its reader as soon as it learns of
 * the exit, without reading to EOF (containerd 1.6's `ctr run --rm` does): what it has not
 * read yet would be lost with the FIFO. So while the FIFO holds bytes the stream is not
 * finished, and the exit waits (bounded by the drain deadline, which the runtime's reading
 * renews); the host fd is closed once the FIFO is empty.
 */
static void
io_stream_output_end(struct io_stream *st)
{
	char self[32];
	int wfd;

	if (st->host_is_file || st->ev_empty == NULL || io_stream_unread(st) == 0) {
		io_stream_close_host(st);
		return;
	}
	/*
	 * Our O_RDWR end counts as a reader of the FIFO: trade it for a write-only end of the
	 * same FIFO, so that the FIFO tells when the runtime has no reader left (`ctr run -d`
	 * exits at once: nothing would ever read those bytes, and the exit must not wait).
	 */
	snprintf(self, sizeof self, "/proc/self/fd/%d", st->hfd);
	io_event_del(st->ev_hwrite);
	wfd = open(self, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (wfd < 0 || dup3(wfd, st->hfd, O_CLOEXEC) < 0) {
		if (wfd >= 0)
			close(wfd);
		io_stream_close_host(st);
		return;
	}
	close(wfd);
	st->unread = io_stream_unread(st);
	if (st->unread == 0) {
		io_stream_close_host(st);
		return;
	}
	st->host = IO_HOST_EMPTYING;
	st->empty_us = 0;
	io_stream_empty_rearm(st);
}

static void
io_stream_on_empty(evutil_socket_t fd, short what, void *arg)
{
	struct io_stream *st = arg;
	int unread;

	(void)fd;
	(void)what;
	if (st->host != IO_HOST_EMPTYING)
		return;
	if ((unread = io_stream_unread(st)) == 0) {
		io_stream_close_host(st);
		io_stream_update(st);
		return;
	}
	/* The runtime reading renews the drain deadline, as writing into the FIFO does. */
	if (unread < st->unread)
		st->owner->host_written += (uint64_t)(st->unread - unread);
	st->unread = unread;
	io_stream_empty_rearm(st);
}

/* Tell on_output_done's event to fire once every output stream is finished. */
static void
io_streams_check_output(struct io_streams *s)
{
	static const struct timeval now;
	int i;

	if (s->phase != IO_PHASE_FLOWING)
		return;
	for (i = IO_STDOUT; i < IO_NSTREAMS; i++)
		if (s->st[i].present && !io_stream_finished(&s->st[i]))
			return;
	s->phase = IO_PHASE_OUTPUT_DONE;
	event_add(s->ev_done, &now);
}

/*
 * Stdin, spliced: bytes of ours still wait for the socket. The FIFO is then left unread until
 * they are through, so that its next frame is spliced; reading it meanwhile would copy the
 * rest of a big transfer into the buffer, 64 KiB per read, for as long as the socket stays full.
 */
static bool
io_stream_stdin_queued(const struct io_stream *st)
{
	return st->splice && evbuffer_get_length(st->buf) > 0;
}

/* Derive closes, the half-closed timer and which events are wanted from a stream's state. */
static void
io_stream_update(struct io_stream *st)
{
	struct io_streams *s = st->owner;
	struct timeval tv;
	size_t pending;
	bool half;

	if (st->tx == STREAM_TX_EOF_QUEUED && evbuffer_get_length(st->buf) == 0 && st->tx_left == 0)
		st->tx = STREAM_TX_EOF_SENT;
	if (st->tx == STREAM_TX_EOF_SENT && st->rx == STREAM_RX_EOF)
		io_stream_close_guest(st);
	/*
	 * Output: once the guest side is over, the host side ends when the buffer is written and
	 * the runtime has read the FIFO out (io_stream_output_end).
	 */
	if (st->kind != IO_STDIN && st->tx == STREAM_TX_CLOSED &&
	    evbuffer_get_length(st->buf) == 0 && st->host != IO_HOST_CLOSED &&
	    st->host != IO_HOST_EMPTYING)
		io_stream_output_end(st);

	pending = evbuffer_get_length(st->buf);
	if (st->tx != STREAM_TX_CLOSED) {
		if (st->kind == IO_STDIN ||
		    (io_stream_room(st) >= IO_READ_CHUNK && st->host != IO_HOST_FULL))
			event_add(st->ev_gread, NULL);
		else
			io_event_del(st->ev_gread);
		if (st->kind == IO_STDIN && (pending > 0 || st->tx_left > 0 || st->gfull))
			event_add(st->ev_gwrite, NULL);
		else
			io_event_del(st->ev_gwrite);
		/*
		 * Half-closed: one EOF went out, the other has not come. Our stdin EOF comes back
		 * only once the agent wrote everything into the process, which may rightly take
		 * as long as the process does not read: that wait counts only once it is gone.
		 */
		half = (st->rx == STREAM_RX_EOF && st->tx != STREAM_TX_EOF_SENT) ||
		       (st->kind == IO_STDIN && st->tx == STREAM_TX_EOF_SENT &&
			   st->rx == STREAM_RX_OPEN && s->proc != IO_PROC_RUNNING);
		/* Once half-closed a stream stays so until closed: the timer is armed once. */
		if (half && !evtimer_pending(st->ev_timer, NULL)) {
			tv.tv_sec = s->half_closed_ms / 1000;
			tv.tv_usec = (s->half_closed_ms % 1000) * 1000;
			event_add(st->ev_timer, &tv);
		}
	}
	if (st->host != IO_HOST_CLOSED) {
		if (st->kind == IO_STDIN) {
			if (io_stream_room(st) >= STREAM_LEN_SIZE + IO_READ_CHUNK &&
			    st->tx_left == 0 && !st->gfull && st->host != IO_HOST_RESTING &&
			    !io_stream_stdin_queued(st))
				event_add(st->ev_hread, NULL);
			else
				io_event_del(st->ev_hread);
		} else if (!st->host_is_file) {
			if (pending > 0 || st->host == IO_HOST_FULL)
				event_add(st->ev_hwrite, NULL);
			else
				io_event_del(st->ev_hwrite);
		}
	}
	if (st->kind != IO_STDIN && io_stream_finished(st))
		io_streams_check_output(s);
}

/*
 * Output bytes from the guest: written straight to the host when nothing is queued before
 * them (no copy in the common case of a reader that keeps up), else queued behind the rest.
 * A write error leaves the bytes queued for io_stream_flush_host() to report and discard.
 */
static void
io_stream_output(struct io_stream *st, const uint8_t *data, size_t len)
{
	ssize_t n;

	if (evbuffer_get_length(st->buf) == 0) {
		do
			n = write(st->hfd, data, len);
		while (n < 0 && errno == EINTR);
		if (n > 0) {
			st->owner->host_written += (uint64_t)n;
			data += n;
			len -= (size_t)n;
		}
	}
	if (len > 0)
		evbuffer_add(st->buf, data, len);
}

/* One decoded event from the guest; false when the stream failed. */
static bool
io_stream_on_frame(struct io_stream *st, enum stream_result r, const uint8_t *data, size_t len)
{
	switch (r) {
	case STREAM_DATA:
		if (st->kind == IO_STDIN) {
			io_stream_fail(st, "data from the guest on stdin", 0);
			return false;
		}
		if (st->host != IO_HOST_CLOSED)
			io_stream_output(st, data, len);
		return true;
	case STREAM_EOF:
		st->rx = STREAM_RX_EOF;
		if (st->kind == IO_STDIN)
			io_stream_end_stdin(st);
		return true;
	case STREAM_ERROR:
		io_stream_fail(st, st->dec.eof ? "data after EOF" : "frame length over 10 MiB", 0);
		return false;
	case STREAM_MORE:
		return true;
	}
	return true;
}

/* Output: the current frame's payload can be spliced (a FIFO, nothing queued before it). */
static bool
io_stream_can_splice(struct io_stream *st)
{
	return st->splice && st->host == IO_HOST_OPEN && st->tx != STREAM_TX_CLOSED &&
	       evbuffer_get_length(st->buf) == 0 && stream_decoder_payload_left(&st->dec) > 0;
}

/*
 * Output: splice the current frame's payload from the guest socket straight into the host
 * FIFO, never through our memory. Returns the bytes moved; else 0 to wait (the socket is
 * empty, or the FIFO is full: IO_HOST_FULL, the socket is left unread so the agent feels the
 * backpressure), or -1 for the read path to see what splice cannot report: the guest's close
 * (0), a socket error, or splice refused (which switches the stream to copies for good).
 */
static ssize_t
io_stream_splice_output(struct io_stream *st)
{
	struct io_streams *s = st->owner;
	size_t moved = 0;
	bool ended = false;
	ssize_t n;
	int avail = 0;

	while (io_stream_can_splice(st)) {
		n = splice(st->gfd, NULL, st->hfd, NULL, stream_decoder_payload_left(&st->dec),
		    SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			stream_decoder_skip(&st->dec, (uint32_t)n);
			s->host_written += (uint64_t)n;
			moved += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* Which side blocked? Bytes waiting in the socket mean the FIFO is full. */
			if (ioctl(st->gfd, FIONREAD, &avail) == 0 && avail > 0)
				st->host = IO_HOST_FULL;
			break;
		}
		/* 0 (the guest closed) and errors are for the read path to see and report. */
		if (n < 0 && errno != EPIPE && errno != ECONNRESET) {
			log_debug_id(s->id, s->exec_id, "%s: splice refused (%s): copying",
			    io_stream_name(st), strerror(errno));
			st->splice = false;
		}
		ended = true;
		break;
	}
	if (moved > 0)
		return (ssize_t)moved;
	return ended ? -1 : 0;
}

/*
 * One read from the guest socket, decoded: what fits under the bound. Returns the bytes read,
 * or 0 when nothing was (EAGAIN) or the stream ended or failed.
 */
static size_t
io_stream_read_guest(struct io_stream *st)
{
	const uint8_t *data;
	enum stream_result r;
	size_t want, off, used, len;
	ssize_t n;

	/* Payload is never more than what was read, so an output buffer stays under its bound. */
	want = st->gread_want;
	if (st->kind != IO_STDIN && io_stream_room(st) < want)
		want = io_stream_room(st);
	if (want == 0)
		return 0;
	n = read(st->gfd, st->owner->scratch, want);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			io_stream_fail(st, "reading from the guest", errno);
		return 0;
	}
	if (n == 0) {
		if (st->rx == STREAM_RX_EOF) {
			/* The agent had said all it had to say; what we still owed it is moot. */
			io_stream_close_guest(st);
			io_stream_update(st);
		} else {
			io_stream_fail(st, "the guest closed the stream before its EOF", 0);
		}
		return 0;
	}
	for (off = 0; off < (size_t)n; off += used) {
		r = stream_decoder_feed(
		    &st->dec, st->owner->scratch + off, (size_t)n - off, &used, &data, &len);
		/* A failed stream still flushes what came before the failure (below). */
		if (!io_stream_on_frame(st, r, data, len))
			return 0;
		if (r == STREAM_MORE)
			break;
	}
	return (size_t)n;
}

/*
 * The guest socket is readable. Output to a FIFO alternates a read (a frame header, or a whole
 * chunk of small frames) and a splice of the frame's payload; after a spliced frame the next
 * read takes only the header, so big frames are never copied. Anything else is read and
 * copied as before.
 */
static void
io_stream_on_gread(evutil_socket_t fd, short what, void *arg)
{
	struct io_stream *st = arg;
	size_t turn = 0, n;
	ssize_t moved;

	(void)fd;
	(void)what;
	while (turn < IO_TURN_MAX) {
		/* -1: not spliceable now, or something for the read path to see (EOF, error). */
		moved = io_stream_can_splice(st) ? io_stream_splice_output(st) : -1;
		if (moved == 0)
			break;
		if (moved > 0) {
			turn += (size_t)moved;
			/*
			 * After a big spliced payload (the agent sends big frames) only the next
			 * header is read; after small ones a chunk, which holds several frames.
			 */
			st->gread_want =
			    (size_t)moved >= IO_SPLICE_BIG ? STREAM_LEN_SIZE : IO_READ_CHUNK;
			if (stream_decoder_payload_left(&st->dec) > 0)
				break;
			continue;
		}
		n = io_stream_read_guest(st);
		if (n == 0 || st->gfd == -1)
			break;
		turn += n;
		if (!io_stream_can_splice(st)) {
			st->gread_want = IO_READ_CHUNK;
			break;
		}
	}
	if (st->kind == IO_STDIN)
		io_stream_flush_guest(st);
	else
		io_stream_flush_host(st);
	io_stream_update(st);
}

/*
 * Stdin: splice the rest of the frame on the wire from the FIFO into the socket; a full
 * socket leaves it for ev_gwrite. A refusal (AF_VSOCK) or an error moves the rest into the
 * buffer, where the copy path sends it or reports the error.
 */
static void
io_stream_splice_input_more(struct io_stream *st)
{
	struct io_streams *s = st->owner;
	ssize_t n;

	while (st->tx_left > 0) {
		n = splice(
		    st->hfd, NULL, st->gfd, NULL, st->tx_left, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			st->tx_left -= (uint32_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && (errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
			log_debug_id(s->id, s->exec_id, "stdin: splice refused (%s): copying",
			    strerror(errno));
			st->splice = false;
		}
		io_stream_take_input(st);
		return;
	}
}

/*
 * Stdin, spliced: FIONREAD says what the FIFO holds, and up to a frame of it goes to the guest
 * as the frame's header, sent, then its payload spliced from the FIFO into the socket, never
 * through our memory. A full socket sets gfull: the FIFO is left unread until the socket
 * drains (reading it into the buffer instead would turn the rest of the transfer into copies).
 * False leaves the wake-up to the read path: little or nothing waiting (a small read is as
 * cheap; nothing is the writer's close), or the socket failed.
 */
static bool
io_stream_splice_input(struct io_stream *st)
{
	uint8_t hdr[STREAM_LEN_SIZE];
	size_t want;
	ssize_t n;
	int avail = 0;

	if (ioctl(st->hfd, FIONREAD, &avail) == -1 || avail <= 0)
		return false;
	want = (size_t)avail < IO_SPLICE_FRAME_IN ? (size_t)avail : IO_SPLICE_FRAME_IN;
	if (st->host == IO_HOST_DRAINING && st->close_left < want)
		want = st->close_left;
	if (want <= IO_SPLICE_MIN_IN)
		return false;
	stream_len_pack((uint32_t)want, hdr);
	do
		n = send(st->gfd, hdr, sizeof hdr, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN) {
		st->gfull = true;
		return true;
	}
	if (n < 0)
		return false;
	st->tx_left = (uint32_t)want;
	st->bulk = (size_t)avail >= IO_BULK_MIN;
	if ((size_t)n < sizeof hdr) {
		/* Rare: part of the header went; the frame finishes through the buffer. */
		evbuffer_add(st->buf, hdr + n, sizeof hdr - (size_t)n);
		io_stream_take_input(st);
	} else {
		io_stream_splice_input_more(st);
	}
	if (st->host == IO_HOST_DRAINING) {
		st->close_left -= want;
		if (st->close_left == 0)
			io_stream_end_stdin(st);
	}
	return true;
}

/* The guest socket takes more stdin bytes. */
static void
io_stream_on_gwrite(evutil_socket_t fd, short what, void *arg)
{
	struct io_stream *st = arg;

	(void)fd;
	(void)what;
	if (st->tx_left > 0)
		io_stream_splice_input_more(st);
	io_stream_flush_guest(st);
	if (st->gfull) {
		/* The frame that could not start, now (or the FIFO's next wake-up does). */
		st->gfull = false;
		if ((st->host == IO_HOST_OPEN || st->host == IO_HOST_DRAINING) && st->splice &&
		    st->tx_left == 0 && evbuffer_get_length(st->buf) == 0)
			io_stream_splice_input(st);
	}
	io_stream_update(st);
}

/* Stdin: a small read; unless the writer is gone, rest the FIFO for a batching window. */
static void
io_stream_batch_start(struct io_stream *st)
{
	struct pollfd pfd = {.fd = st->hfd, .events = POLLIN};

	if (st->bulk) {
		/*
		 * What a fast writer added while its big frame was spliced: waiting would only
		 * idle the chain (the writer was blocked on the full FIFO, not slow). The next
		 * small read, if any, starts a window.
		 */
		st->bulk = false;
		return;
	}
	if (st->owner->batch_us == 0 || poll(&pfd, 1, 0) < 0 ||
	    (pfd.revents & (POLLHUP | POLLERR)) != 0)
		return;
	if (ptimer_arm(st->batch_tm, (unsigned int)st->owner->batch_us) < 0)
		return;
	st->host = IO_HOST_RESTING;
}

static void io_stream_on_hread(evutil_socket_t fd, short what, void *arg);

/* Stdin: the batching window ended: read what the FIFO gathered. */
static void
io_stream_on_batch(evutil_socket_t fd, short what, void *arg)
{
	struct io_stream *st = arg;

	(void)fd;
	(void)what;
	if (st->host != IO_HOST_RESTING)
		return;
	st->host = IO_HOST_OPEN;
	io_stream_on_hread(st->hfd, EV_READ, st);
}

/* The stdin FIFO is readable: one read becomes one frame; 0 is the runtime's close. */
static void
io_stream_on_hread(evutil_socket_t fd, short what, void *arg)
{
	struct io_stream *st = arg;
	struct io_streams *s = st->owner;
	struct evbuffer_iovec vec;
	size_t want;
	ssize_t n;

	(void)what;
	if (st->splice && st->tx_left == 0 && evbuffer_get_length(st->buf) == 0 &&
	    io_stream_splice_input(st)) {
		io_stream_flush_guest(st);
		io_stream_update(st);
		return;
	}
	if (io_stream_stdin_queued(st)) {
		/* A batching window's end, with the last frame not through yet: wait for it. */
		io_stream_update(st);
		return;
	}
	want = IO_READ_CHUNK;
	if (st->host == IO_HOST_DRAINING && st->close_left < want)
		want = st->close_left;
	if (evbuffer_reserve_space(st->buf, STREAM_LEN_SIZE + IO_READ_CHUNK, &vec, 1) != 1 ||
	    vec.iov_len < STREAM_LEN_SIZE + IO_READ_CHUNK)
		fatalx("evbuffer_reserve_space");
	n = read(fd, (uint8_t *)vec.iov_base + STREAM_LEN_SIZE, want);
	if (n > 0) {
		stream_len_pack((uint32_t)n, vec.iov_base);
		vec.iov_len = STREAM_LEN_SIZE + (size_t)n;
		evbuffer_commit_space(st->buf, &vec, 1);
		if (st->host == IO_HOST_DRAINING) {
			st->close_left -= (size_t)n;
			if (st->close_left == 0)
				io_stream_end_stdin(st);
		} else if ((size_t)n < IO_BATCH_MIN) {
			io_stream_batch_start(st);
		}
	} else if (n == 0 || (errno == EAGAIN && st->host == IO_HOST_DRAINING)) {
		io_stream_end_stdin(st);
	} else if (errno != EAGAIN && errno != EINTR) {
		log_warn_id(s->id, s->exec_id, "reading stdin: %s; ending stdin", strerror(errno));
		io_stream_end_stdin(st);
	}
	io_stream_flush_guest(st);
	io_stream_update(st);
}

/* The host FIFO takes more output (queued bytes, or the spliced payload waiting for it). */
static void
io_stream_on_hwrite(evutil_socket_t fd, short what, void *arg)
{
	struct io_stream *st = arg;

	(void)fd;
	(void)what;
	if (st->host == IO_HOST_FULL)
		st->host = IO_HOST_OPEN;
	io_stream_flush_host(st);
	io_stream_update(st);
}

/* The stream stayed half-closed too long: close it and say so. */
static void
io_stream_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct io_stream *st = arg;
	struct io_streams *s = st->owner;

	(void)fd;
	(void)what;
	log_warn_id(s->id, s->exec_id, "%s stream half-closed for %d ms (EOF %s, not %s): closing",
	    io_stream_name(st), s->half_closed_ms,
	    st->tx == STREAM_TX_EOF_SENT ? "sent" : "received",
	    st->tx == STREAM_TX_EOF_SENT ? "received" : "sent");
	io_stream_close_guest(st);
	if (st->kind == IO_STDIN)
		io_stream_close_host(st);
	io_stream_update(st);
}

/* Arm (or re-arm) the drain deadline: half_closed_ms from now. */
static void
io_streams_arm_drain(struct io_streams *s)
{
	struct timeval tv;

	tv.tv_sec = s->half_closed_ms / 1000;
	tv.tv_usec = (s->half_closed_ms % 1000) * 1000;
	s->drain_mark = s->host_written;
	event_add(s->ev_drain, &tv);
}

/*
 * Only the agent's exit-pending notice so far, and the host took nothing for half_closed_ms.
 * If nothing waits for the host, the guest is the slow side (a descendant holds the pipe, the
 * agent has its own grace for that): wait another period. Else give up the host side of each
 * stream that has bytes the host did not take: drop them and close the host fd, but keep
 * reading (and discarding) the guest to its EOF, so the agent drains and reports the exit.
 */
static void
io_streams_give_up_host(struct io_streams *s)
{
	size_t dropped = 0;
	int i, n = 0, stuck = 0;

	/* Stuck on the host: bytes queued for it, or a spliced payload the FIFO had no room for. */
	for (i = IO_STDOUT; i < IO_NSTREAMS; i++) {
		if (!s->st[i].present || s->st[i].host == IO_HOST_CLOSED)
			continue;
		dropped += evbuffer_get_length(s->st[i].buf);
		if (evbuffer_get_length(s->st[i].buf) > 0 || s->st[i].host == IO_HOST_FULL)
			stuck++;
	}
	if (stuck == 0) {
		io_streams_arm_drain(s);
		return;
	}
	for (i = IO_STDOUT; i < IO_NSTREAMS; i++) {
		struct io_stream *st = &s->st[i];

		if (!st->present || st->host == IO_HOST_CLOSED ||
		    (evbuffer_get_length(st->buf) == 0 && st->host != IO_HOST_FULL))
			continue;
		io_stream_close_host(st);
		io_stream_update(st);
		n++;
	}
	log_warn_id(s->id, s->exec_id,
	    "output not drained %d ms after the process exited (the host side takes nothing): "
	    "dropping %zu buffered byte(s), closing the host side of %d stream(s) and "
	    "discarding the rest of their output until the guest's EOF",
	    s->half_closed_ms, dropped, n);
	/*
	 * A stream that had nothing buffered now may fill later (a descendant writing): keep
	 * checking every period until the exit, or that stream would hold the exit forever.
	 */
	io_streams_arm_drain(s);
}

/*
 * The process exited half_closed_ms ago and its output is still not through. A host that
 * took bytes meanwhile is reading: give it another period. One that took nothing (a FIFO
 * nobody reads) would hold the exit forever: fail the output streams (what is buffered is
 * dropped, each descriptor closed once), which finishes them and lets the exit be published.
 */
static void
io_streams_on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct io_streams *s = arg;
	size_t dropped = 0, unread = 0;
	int i;

	(void)fd;
	(void)what;
	if (s->phase != IO_PHASE_FLOWING)
		return;
	if (s->host_written != s->drain_mark) {
		io_streams_arm_drain(s);
		return;
	}
	if (s->proc != IO_PROC_EXITED) {
		io_streams_give_up_host(s);
		return;
	}
	for (i = IO_STDOUT; i < IO_NSTREAMS; i++) {
		if (!s->st[i].present || io_stream_finished(&s->st[i]))
			continue;
		dropped += evbuffer_get_length(s->st[i].buf);
		if (s->st[i].host == IO_HOST_EMPTYING)
			unread += (size_t)s->st[i].unread;
	}
	log_warn_id(s->id, s->exec_id,
	    "output not drained %d ms after the process exited (the host side takes nothing): "
	    "dropping %zu buffered byte(s), leaving %zu unread in the FIFO(s), closing "
	    "stdout/stderr",
	    s->half_closed_ms, dropped, unread);
	for (i = IO_STDOUT; i < IO_NSTREAMS; i++) {
		struct io_stream *st = &s->st[i];

		if (!st->present || io_stream_finished(st))
			continue;
		io_stream_close_guest(st);
		io_stream_close_host(st);
		io_stream_update(st);
	}
}

/*
 * The process moved on (exit-pending notice, then the exit). Leaving RUNNING starts the
 * output's drain deadline, once (it re-arms itself while it runs), and gives a stdin stream
 * still waiting for the agent's EOF its half-closed deadline.
 */
static void
io_streams_set_proc(struct io_streams *s, enum io_proc proc)
{
	struct io_stream *in = &s->st[IO_STDIN];
	enum io_proc was = s->proc;

	if (s->phase == IO_PHASE_FREED || proc <= was)
		return;
	s->proc = proc;
	if (was != IO_PROC_RUNNING)
		return;
	if (in->present && in->tx != STREAM_TX_CLOSED)
		io_stream_update(in);
	/* An exit now waits for the FIFOs being emptied: look at them often from here on. */
	for (int i = IO_STDOUT; i < IO_NSTREAMS; i++) {
		struct io_stream *st = &s->st[i];

		if (st->present && st->host == IO_HOST_EMPTYING) {
			st->empty_us = 0;
			io_stream_empty_rearm(st);
		}
	}
	if (s->phase == IO_PHASE_FLOWING)
		io_streams_arm_drain(s);
}

void
io_exit_seen(struct io_streams *s)
{
	if (s != NULL)
		io_streams_set_proc(s, IO_PROC_EXITED);
}

void
io_exit_pending(struct io_streams *s)
{
	if (s != NULL)
		io_streams_set_proc(s, IO_PROC_PENDING);
}

/* Free what io_free() has torn down; the struct itself goes last. */
static void
io_streams_release(struct io_streams *s)
{
	free(s->scratch);
	free(s->id);
	free(s->exec_id);
	free(s);
}

/* Every output stream is finished: tell the task code, from the top of the loop. */
static void
io_streams_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct io_streams *s = arg;

	(void)fd;
	(void)what;
	s->busy++;
	if (s->on_output_done != NULL)
		s->on_output_done(s->arg);
	/* on_output_done may have called io_free(): then we hold the last reference. */
	if (--s->busy == 0 && s->phase == IO_PHASE_FREED)
		io_streams_release(s);
}

static struct event *
io_event_new(struct event_base *base, int fd, short what, event_callback_fn cb, void *arg)
{
	struct event *ev;

	ev = event_new(base, fd, what, cb, arg);
	if (ev == NULL)
		fatalx("event_new");
	return ev;
}

/* VMSHIM_IO_COPY=1 in the environment forces the copy path (tests of the fallback). */
static bool
io_copy_forced(void)
{
	const char *v = getenv("VMSHIM_IO_COPY");

	return v != NULL && strcmp(v, "1") == 0;
}

/* VMSHIM_IO_BATCH_US=N (0..100000) in the environment changes the stdin batching window. */
static int
io_batch_us(void)
{
	const char *v = getenv("VMSHIM_IO_BATCH_US");
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return IO_BATCH_US;
	n = strtol(v, &end, 10);
	return *end == '\0' && n >= 0 && n <= 100000 ? (int)n : IO_BATCH_US;
}

/* Take one prepared stream's descriptors and build its events. */
static void
io_stream_init(
    struct io_streams *s, struct io_stream *st, enum io_kind kind, struct io_prepared_stream *ps)
{
	struct event_base *base = s->base;
	int r;

	st->owner = s;
	st->kind = kind;
	st->present = true;
	st->gfd = steal_fd(&ps->guest_fd);
	st->hfd = steal_fd(&ps->host_fd);
	st->host_is_file = ps->host_is_file;
	ps->present = false;
	if ((r = fd_set_nonblock(st->gfd, true)) < 0)
		log_warn_id(
		    s->id, s->exec_id, "%s: O_NONBLOCK: %s", io_stream_name(st), strerror(-r));
	st->buf = evbuffer_new();
	if (st->buf == NULL)
		fatalx("evbuffer_new");
	if (evbuffer_add_cb(st->buf, io_buffer_count, NULL) == NULL)
		fatalx("evbuffer_add_cb");
	stream_decoder_init(&st->dec, 0);
	st->gread_want = IO_READ_CHUNK;
	if (kind != IO_STDIN && !st->host_is_file) {
		/* Best effort: a bigger FIFO lets one splice move a whole frame. */
		(void)fcntl(st->hfd, F_SETPIPE_SZ, IO_PIPE_SIZE);
		st->splice = !io_copy_forced();
	}
	st->ev_gread = io_event_new(base, st->gfd, EV_READ | EV_PERSIST, io_stream_on_gread, st);
	st->ev_timer = io_event_new(base, -1, 0, io_stream_on_timeout, st);
	if (kind == IO_STDIN) {
		st->splice = !io_copy_forced();
		(void)fcntl(st->hfd, F_SETPIPE_SZ, IO_PIPE_SIZE);
		st->batch_tm = ptimer_new(base, io_stream_on_batch, st);
		st->ev_gwrite =
		    io_event_new(base, st->gfd, EV_WRITE | EV_PERSIST, io_stream_on_gwrite, st);
		st->ev_hread =
		    io_event_new(base, st->hfd, EV_READ | EV_PERSIST, io_stream_on_hread, st);
	} else {
		st->tx = STREAM_TX_EOF_SENT; /* with the hello, by io_prepare() */
		if (!st->host_is_file) {
			st->ev_hwrite = io_event_new(
			    base, st->hfd, EV_WRITE | EV_PERSIST, io_stream_on_hwrite, st);
			st->ev_empty = io_event_new(base, -1, 0, io_stream_on_empty, st);
		}
	}
}

struct io_streams *
io_start(
    struct event_base *base, struct io_prepared *p, void (*on_output_done)(void *arg), void *arg)
{
	struct io_streams *s;
	int i;

	s = xcalloc(1, sizeof *s);
	s->base = base;
	s->id = steal_ptr(&p->id);
	s->exec_id = steal_ptr(&p->exec_id);
	s->on_output_done = on_output_done;
	s->arg = arg;
	s->half_closed_ms = atomic_load(&io_half_closed_ms);
	s->batch_us = io_batch_us();
	s->scratch = xmalloc(IO_READ_CHUNK);
	s->ev_done = io_event_new(base, -1, 0, io_streams_on_done, s);
	s->ev_drain = io_event_new(base, -1, 0, io_streams_on_drain, s);
	for (i = 0; i < IO_NSTREAMS; i++) {
		s->st[i].gfd = s->st[i].hfd = -1;
		if (p->st[i].present)
			io_stream_init(s, &s->st[i], i, &p->st[i]);
	}
	io_prepared_free(p);
	for (i = 0; i < IO_NSTREAMS; i++)
		if (s->st[i].present)
			io_stream_update(&s->st[i]);
	/* No output stream at all: done now, but reported from the loop, not from here. */
	io_streams_check_output(s);
	return s;
}

/*
 * CloseIO means "no more than what was written so far" (containerd closes its FIFO writer, then
 * calls CloseIO): the bytes the FIFO holds right now are still read and sent, then the EOF
 * frame; anything written after this call is not. FIONREAD tells how many that is.
 */
void
io_close_stdin(struct io_streams *s)
{
	struct io_stream *st = &s->st[IO_STDIN];
	int avail = 0;

	if (!st->present || (st->host != IO_HOST_OPEN && st->host != IO_HOST_RESTING))
		return;
	/* FIONREAD counts the rest of a frame being spliced too: that is not "more". */
	if (ioctl(st->hfd, FIONREAD, &avail) == -1 || avail <= (int)st->tx_left) {
		io_stream_end_stdin(st);
		io_stream_flush_guest(st);
	} else {
		st->host = IO_HOST_DRAINING;
		st->close_left = (size_t)avail - st->tx_left;
	}
	io_stream_update(st);
}

bool
io_output_done(const struct io_streams *s)
{
	return s->phase == IO_PHASE_OUTPUT_DONE;
}

/* Close a stream's descriptors and free its events and buffer. */
static void
io_stream_teardown(struct io_stream *st)
{
	if (!st->present)
		return;
	io_stream_close_guest(st);
	io_stream_close_host(st);
	if (st->ev_gread != NULL)
		event_free(st->ev_gread);
	if (st->ev_gwrite != NULL)
		event_free(st->ev_gwrite);
	if (st->ev_hread != NULL)
		event_free(st->ev_hread);
	if (st->ev_hwrite != NULL)
		event_free(st->ev_hwrite);
	if (st->ev_timer != NULL)
		event_free(st->ev_timer);
	ptimer_free(st->batch_tm);
	st->batch_tm = NULL;
	if (st->ev_empty != NULL)
		event_free(st->ev_empty);
	st->ev_empty = NULL;
	io_stream_discard(st);
	evbuffer_free(st->buf);
	st->present = false;
}

void
io_free(struct io_streams *s)
{
	int i;

	if (s == NULL || s->phase == IO_PHASE_FREED)
		return;
	for (i = 0; i < IO_NSTREAMS; i++)
		io_stream_teardown(&s->st[i]);
	event_free(s->ev_done);
	s->ev_done = NULL;
	event_free(s->ev_drain);
	s->ev_drain = NULL;
	s->phase = IO_PHASE_FREED;
	if (s->busy == 0)
		io_streams_release(s);
}
