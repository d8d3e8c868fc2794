/*
 * io-prepare.c: the blocking half of the stdio data plane, run on a worker.
 *
 * io_prepare() opens the host side and connects the guest side of every stdio stream of one
 * process, and returns plain descriptors in a struct io_prepared (io-int.h) that io_start()
 * later takes over on the loop thread. Nothing here touches libevent or shared state, so any
 * thread may call it; it blocks at most until its deadline (guest connects and hello writes).
 *
 * Host side, chosen so that the runtime's behaviour can never hang or kill us:
 *  - stdin must be a FIFO; it is opened O_RDONLY|O_NONBLOCK, which never waits for a writer.
 *    Why read-only and not O_RDWR: holding a write end ourselves would hide the runtime's close,
 *    and the runtime closing its writer is exactly how containerd says "stdin EOF". See
 *    io-bridge.c for how a FIFO that has had no writer yet is told apart from one at EOF.
 *  - stdout/stderr FIFOs are opened O_RDWR|O_NONBLOCK: the open never waits for a reader, and
 *    since we hold a read end ourselves a write never fails with EPIPE (nor raises SIGPIPE) when
 *    the runtime's reader goes away and comes back. While no reader is attached, bytes wait in
 *    the FIFO up to the pipe size and then the writes would block: that is backpressure (the
 *    bridge stops reading the guest), not loss.
 *  - an output path that is not a FIFO is opened O_WRONLY|O_APPEND|O_CREAT (0640) and must be
 *    a regular file: it is appended to, never truncated.
 *  - anything else (a directory, a device, a missing stdin FIFO) is INVALID_ARGUMENT naming the
 *    path. The type is checked with fstat() on the opened descriptor, not before opening.
 * Guest side: transport_connect() to the stream endpoint, then the hello frame
 * {"id","exec_id","stream"}; on stdout/stderr our EOF frame follows at once in the same write,
 * because the shim never sends data there (docs/PROTOCOL.md section 3). Writes use
 * send(MSG_NOSIGNAL) so a vanished agent is an error, not SIGPIPE.
 *
 * On failure everything opened so far is closed before returning, so the caller owns nothing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "io-int.h"
#include "io.h"
#include "util.h"

#define IO_CONNECT_DEFAULT_MS 5000

const char *
io_kind_name(enum io_kind kind)
{
	if (kind < 0 || kind >= IO_NSTREAMS)
		fatalx("bad io kind %d", (int)kind);
	return stdio_kind_name((enum stdio_kind)kind);
}

/* The status code for a failed open(2) of a path the runtime gave us. */
static int
io_open_code(int err)
{
	switch (err) {
	case EACCES:
	case EPERM:
		return ST_PERMISSION_DENIED;
	case EMFILE:
	case ENFILE:
	case ENOMEM:
		return ST_RESOURCE_EXHAUSTED;
	default:
		return ST_INVALID_ARGUMENT;
	}
}

/* Open the stdin FIFO for reading without waiting for a writer. fd or -1 with *st. */
static int
io_open_stdin(const char *path, struct status *st)
{
	struct stat sb;
	int fd;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd == -1)
		return status_errno(st, io_open_code(errno), errno, "stdin %s", path);
	if (fstat(fd, &sb) == -1) {
		status_errno(st, ST_INTERNAL, errno, "stdin %s: fstat", path);
		close(fd);
		return -1;
	}
	if (!S_ISFIFO(sb.st_mode)) {
		close(fd);
		return status_set(st, ST_INVALID_ARGUMENT, "stdin %s: not a FIFO", path);
	}
	return fd;
}

/*
 * Open an output path: a FIFO read-write (no EPIPE, no wait for a reader), anything else
 * appended to as a regular file, created if missing. fd or -1 with *st.
 */
static int
io_open_output(const char *name, const char *path, bool *is_file, struct status *st)
{
	struct stat sb;
	bool fifo;
	int fd;

	fifo = stat(path, &sb) == 0 && S_ISFIFO(sb.st_mode);
	if (fifo)
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	else
		fd = open(
		    path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd == -1)
		return status_errno(st, io_open_code(errno), errno, "%s %s", name, path);
	if (fstat(fd, &sb) == -1) {
		status_errno(st, ST_INTERNAL, errno, "%s %s: fstat", name, path);
		close(fd);
		return -1;
	}
	/* A path that changed type between stat() and open() is refused too. */
	if (fifo ? !S_ISFIFO(sb.st_mode) : !S_ISREG(sb.st_mode)) {
		close(fd);
		return status_set(
		    st, ST_INVALID_ARGUMENT, "%s %s: not a FIFO or a regular file", name, path);
	}
	*is_file = !fifo;
	return fd;
}

/* send() all of buf by the deadline, without SIGPIPE. 0 or -errno. */
static int
io_send_all(int fd, const void *buf, size_t len, int64_t deadline_ms)
{
	const uint8_t *p = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = fd_wait(fd, POLLOUT, deadline_ms);
			if (r < 0)
				return r;
			if (r == 0)
				return -ETIMEDOUT;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Connect one guest stream and send its hello frame (and, for output streams, our EOF frame
 * right after it). fd or -1 with *st.
 */
static int
io_connect_stream(const struct endpoint *ep, int64_t deadline_ms, const char *id,
    const char *exec_id, enum io_kind kind, struct status *st)
{
	cleanup_close int fd = -1;
	cleanup_free char *hello = NULL;
	cleanup_free uint8_t *frame = NULL;
	json_t *obj;
	size_t hlen, flen;
	int64_t left;
	int r;

	obj = json_pack(
	    "{s:s, s:s, s:s}", "id", id, "exec_id", exec_id, "stream", io_kind_name(kind));
	if (obj == NULL)
		return status_set(
		    st, ST_INVALID_ARGUMENT, "%s stream: bad id or exec id", io_kind_name(kind));
	hello = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (hello == NULL)
		fatalx("json_dumps");
	hlen = strlen(hello);
	if (hlen > STREAM_HELLO_MAX)
		return status_set(st, ST_INVALID_ARGUMENT, "%s stream: hello of %zu bytes",
		    io_kind_name(kind), hlen);

	left = deadline_ms - time_mono_ms();
	if (left <= 0)
		return status_set(
		    st, ST_DEADLINE_EXCEEDED, "%s stream: connect timed out", io_kind_name(kind));
	fd = transport_connect(ep, (int)left, st);
	if (fd == -1)
		return status_wrap(st, "%s stream", io_kind_name(kind));

	/* hello, then on output streams our (only) EOF frame. */
	flen = STREAM_LEN_SIZE + hlen + (kind == IO_STDIN ? 0 : STREAM_LEN_SIZE);
	frame = xcalloc(1, flen);
	stream_len_pack((uint32_t)hlen, frame);
	memcpy(frame + STREAM_LEN_SIZE, hello, hlen);
	r = io_send_all(fd, frame, flen, deadline_ms);
	if (r < 0)
		return status_errno(st, r == -ETIMEDOUT ? ST_DEADLINE_EXCEEDED : ST_UNAVAILABLE, r,
		    "%s stream: sending the hello", io_kind_name(kind));
	return steal_fd(&fd);
}

/* Close and forget every descriptor p holds. */
static void
io_prepared_close(struct io_prepared *p)
{
	int i;

	for (i = 0; i < IO_NSTREAMS; i++) {
		if (p->st[i].host_fd != -1)
			close(p->st[i].host_fd);
		if (p->st[i].guest_fd != -1)
			close(p->st[i].guest_fd);
		p->st[i].host_fd = p->st[i].guest_fd = -1;
		p->st[i].present = false;
	}
}

static bool
io_path_set(const char *path)
{
	return path != NULL && *path != '\0';
}

struct io_prepared *
io_prepare(
    const struct io_spec *spec, const struct endpoint *stream_ep, int timeout_ms, struct status *st)
{
	struct io_prepared *p;
	const char *paths[IO_NSTREAMS];
	int64_t deadline_ms;
	int i, fd;

	if (timeout_ms <= 0)
		timeout_ms = IO_CONNECT_DEFAULT_MS;
	deadline_ms = time_mono_ms() + timeout_ms;

	p = xcalloc(1, sizeof *p);
	p->id = xstrdup(spec->id != NULL ? spec->id : "");
	p->exec_id = xstrdup(spec->exec_id != NULL ? spec->exec_id : "");
	p->terminal = spec->terminal;
	paths[IO_STDIN] = spec->stdin_path;
	paths[IO_STDOUT] = spec->stdout_path;
	/* A terminal merges stderr into stdout: there is no stderr stream at all. */
	paths[IO_STDERR] = spec->terminal ? NULL : spec->stderr_path;
	for (i = 0; i < IO_NSTREAMS; i++) {
		p->st[i].host_fd = p->st[i].guest_fd = -1;
		p->st[i].present = io_path_set(paths[i]);
	}

	/* Host side first: cheap, local, and it validates the paths before we touch the guest. */
	for (i = 0; i < IO_NSTREAMS; i++) {
		if (!p->st[i].present)
			continue;
		if (i == IO_STDIN)
			fd = io_open_stdin(paths[i], st);
		else
			fd = io_open_output(io_kind_name(i), paths[i], &p->st[i].host_is_file, st);
		if (fd == -1)
			goto fail;
		p->st[i].host_fd = fd;
	}
	for (i = 0; i < IO_NSTREAMS; i++) {
		if (!p->st[i].present)
			continue;
		fd = io_connect_stream(stream_ep, deadline_ms, p->id, p->exec_id, i, st);
		if (fd == -1)
			goto fail;
		p->st[i].guest_fd = fd;
	}
	return p;

fail:
	io_prepared_free(p);
	return NULL;
}

void
io_prepared_streams(const struct io_prepared *p, bool *in, bool *out, bool *err)
{
	*in = p->st[IO_STDIN].present;
	*out = p->st[IO_STDOUT].present;
	*err = p->st[IO_STDERR].present;
}

void
io_prepared_free(struct io_prepared *p)
{
	if (p == NULL)
		return;
	io_prepared_close(p);
	free(p->id);
	free(p->exec_id);
	free(p);
}
