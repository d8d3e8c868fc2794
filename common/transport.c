/*
 * transport.c: endpoint strings, dialling (unix, vsock, hybrid vsock) and listening.
 *
 * Design: every function here is a self-contained blocking call bounded by a deadline on the
 * monotonic clock; nothing is shared between calls, so all of them are thread-safe. They are
 * meant for worker or dedicated threads (the hybrid handshake and a slow connect can take up
 * to the whole deadline), never for the loop thread.
 *
 * Ownership: a descriptor created here is closed here on every error path (cleanup_close) and
 * handed to the caller on success, who then owns it. Descriptors passed in (the handshake
 * functions) stay the caller's; their O_NONBLOCK flag is restored before returning.
 *
 * The hybrid vsock line is read one byte at a time, so whatever the guest sends right after
 * the '\n' stays in the socket for the caller; a line is at most HYBRID_LINE_MAX bytes with
 * its newline, and nothing past that limit is ever consumed. Writes use MSG_NOSIGNAL so a peer
 * that hung up yields EPIPE, not a SIGPIPE that would kill the process.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "transport.h"
#include "util.h"

#define TRANSPORT_TIMEOUT_DEFAULT_MS 5000
#define TRANSPORT_NAME_MAX	     128 /* "uds:" + 107-byte path + ":" + u32 + NUL */
#define TRANSPORT_EAGAIN_RETRY_MS    10	 /* backoff while a unix listener's backlog is full */

/* What hybrid_read_line() saw. */
enum hybrid_read {
	HYBRID_READ_LINE,
	HYBRID_READ_EOF,
	HYBRID_READ_TOO_LONG,
	HYBRID_READ_TIMEOUT,
	HYBRID_READ_ERROR,
};

union transport_addr {
	struct sockaddr sa;
	struct sockaddr_un un;
	struct sockaddr_vm vm;
};

/* Copy `len` bytes of the string `s` (which must have that many) into buf, NUL-terminated. */
static void
transport_copy(char *buf, const char *s, size_t len)
{
	memcpy(buf, s, len);
	buf[len] = '\0';
}

int
endpoint_parse(const char *s, struct endpoint *ep, struct status *st)
{
	const char *rest, *colon;
	char num[16];
	size_t len;

	memset(ep, 0, sizeof *ep);
	if (strncmp(s, "unix:", 5) == 0) {
		rest = s + 5;
		len = strlen(rest);
		if (len == 0)
			return status_set(
			    st, ST_INVALID_ARGUMENT, "endpoint \"%s\": empty path", s);
		if (len >= sizeof ep->path)
			return status_set(
			    st, ST_INVALID_ARGUMENT, "endpoint \"%s\": path too long", s);
		ep->kind = ENDPOINT_UNIX;
		transport_copy(ep->path, rest, len);
		return 0;
	}
	if (strncmp(s, "vsock:", 6) == 0) {
		rest = s + 6;
		colon = strchr(rest, ':');
		if (colon == NULL)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "endpoint \"%s\": missing port, expected vsock:CID:PORT", s);
		len = (size_t)(colon - rest);
		if (len >= sizeof num)
			return status_set(st, ST_INVALID_ARGUMENT, "endpoint \"%s\": bad cid", s);
		transport_copy(num, rest, len);
		if (parse_u32(num, &ep->cid) < 0)
			return status_set(st, ST_INVALID_ARGUMENT, "endpoint \"%s\": bad cid", s);
		if (parse_u32(colon + 1, &ep->port) < 0)
			return status_set(st, ST_INVALID_ARGUMENT, "endpoint \"%s\": bad port", s);
		ep->kind = ENDPOINT_VSOCK;
		return 0;
	}
	if (strncmp(s, "uds:", 4) == 0) {
		rest = s + 4;
		colon = strrchr(rest, ':');
		if (colon == NULL)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "endpoint \"%s\": missing port, expected uds:PATH:PORT", s);
		len = (size_t)(colon - rest);
		if (len == 0)
			return status_set(
			    st, ST_INVALID_ARGUMENT, "endpoint \"%s\": empty path", s);
		if (len >= sizeof ep->path)
			return status_set(
			    st, ST_INVALID_ARGUMENT, "endpoint \"%s\": path too long", s);
		if (parse_u32(colon + 1, &ep->port) < 0)
			return status_set(st, ST_INVALID_ARGUMENT, "endpoint \"%s\": bad port", s);
		ep->kind = ENDPOINT_HYBRID;
		transport_copy(ep->path, rest, len);
		return 0;
	}
	return status_set(st, ST_INVALID_ARGUMENT,
	    "endpoint \"%s\": unknown scheme, expected unix:, vsock: or uds:", s);
}

void
endpoint_format(const struct endpoint *ep, char *buf, size_t len)
{
	int n = (int)strnlen(ep->path, sizeof ep->path);

	switch (ep->kind) {
	case ENDPOINT_UNIX:
		snprintf(buf, len, "unix:%.*s", n, ep->path);
		break;
	case ENDPOINT_VSOCK:
		snprintf(buf, len, "vsock:%u:%u", ep->cid, ep->port);
		break;
	case ENDPOINT_HYBRID:
		snprintf(buf, len, "uds:%.*s:%u", n, ep->path, ep->port);
		break;
	default:
		snprintf(buf, len, "endpoint?%d", (int)ep->kind);
		break;
	}
}

/* The status code for a failed socket call: the peer's fault unless it is ours or the host's. */
static int
transport_errno_code(int err)
{
	switch (err) {
	case ETIMEDOUT:
		return ST_DEADLINE_EXCEEDED;
	case EACCES:
	case EPERM:
		return ST_PERMISSION_DENIED;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		return ST_RESOURCE_EXHAUSTED;
	default:
		return ST_UNAVAILABLE;
	}
}

/* Turn on O_NONBLOCK for the duration of a call; *was says whether it was already on. */
static int
transport_nonblock_begin(int fd, bool *was)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -errno;
	*was = (flags & O_NONBLOCK) != 0;
	if (*was)
		return 0;
	return fd_set_nonblock(fd, true);
}

/* Send all of buf on a non-blocking socket by the deadline: 0, -ETIMEDOUT or -errno. */
static int
transport_send_all(int fd, const char *buf, size_t len, int64_t deadline_ms)
{
	ssize_t n;
	int r;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = fd_wait(fd, POLLOUT, deadline_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Read one '\n'-terminated line from a non-blocking fd, one byte per read(2) so nothing after
 * the newline is consumed. buf gets the line without '\n', NUL-terminated (it must hold
 * HYBRID_LINE_MAX bytes); *err gets the errno for HYBRID_READ_ERROR.
 */
static enum hybrid_read
hybrid_read_line(int fd, int64_t deadline_ms, char buf[HYBRID_LINE_MAX], size_t *lenp, int *err)
{
	size_t n = 0;
	ssize_t r;
	char c;
	int w;

	for (;;) {
		r = read(fd, &c, 1);
		if (r == 1) {
			if (c == '\n') {
				buf[n] = '\0';
				*lenp = n;
				return HYBRID_READ_LINE;
			}
			/* This byte is the (n + 1)th: no room left for the newline. */
			if (n + 1 >= HYBRID_LINE_MAX)
				return HYBRID_READ_TOO_LONG;
			buf[n++] = c;
			continue;
		}
		if (r == 0)
			return HYBRID_READ_EOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			*err = errno;
			return HYBRID_READ_ERROR;
		}
		w = fd_wait(fd, POLLIN, deadline_ms);
		if (w == 0)
			return HYBRID_READ_TIMEOUT;
		if (w < 0) {
			*err = -w;
			return HYBRID_READ_ERROR;
		}
	}
}

/* Quote a line from a peer for a message: printable ASCII as is, the rest as \xHH. */
static void
hybrid_quote(const char *line, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;
	unsigned char c;

	for (i = 0; i < len && o + 5 < outlen; i++) {
		c = (unsigned char)line[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

/* Parse the VMM's answer "OK <u32>" (without its '\n'). 0 or -1. */
static int
hybrid_parse_ok(const char *line, size_t len)
{
	uint32_t host_port;

	if (memchr(line, '\0', len) != NULL)
		return -1;
	if (len < 3 || memcmp(line, "OK ", 3) != 0)
		return -1;
	return parse_u32(line + 3, &host_port) < 0 ? -1 : 0;
}

/* The client side of the handshake on a non-blocking fd; `name` is the socket path for messages. */
static int
hybrid_client(int fd, const char *name, uint32_t port, int64_t deadline_ms, struct status *st)
{
	char req[32], line[HYBRID_LINE_MAX], quoted[HYBRID_LINE_MAX * 4 + 1];
	size_t len;
	int n, r, err = 0;

	n = snprintf(req, sizeof req, "CONNECT %u\n", port);
	r = transport_send_all(fd, req, (size_t)n, deadline_ms);
	if (r == -ETIMEDOUT)
		return status_set(st, ST_DEADLINE_EXCEEDED,
		    "hybrid vsock handshake with %s port %u failed: request not sent within the "
		    "deadline",
		    name, port);
	if (r < 0)
		return status_errno(st, ST_UNAVAILABLE, r,
		    "hybrid vsock handshake with %s port %u failed: write", name, port);

	switch (hybrid_read_line(fd, deadline_ms, line, &len, &err)) {
	case HYBRID_READ_LINE:
		break;
	case HYBRID_READ_EOF:
		return status_set(st, ST_UNAVAILABLE,
		    "hybrid vsock handshake with %s port %u failed: connection closed before the "
		    "answer",
		    name, port);
	case HYBRID_READ_TOO_LONG:
		return status_set(st, ST_UNAVAILABLE,
		    "hybrid vsock handshake with %s port %u failed: answer longer than %d bytes",
		    name, port, HYBRID_LINE_MAX);
	case HYBRID_READ_TIMEOUT:
		return status_set(st, ST_DEADLINE_EXCEEDED,
		    "hybrid vsock handshake with %s port %u failed: no answer within the deadline",
		    name, port);
	case HYBRID_READ_ERROR:
	default:
		return status_errno(st, ST_UNAVAILABLE, err,
		    "hybrid vsock handshake with %s port %u failed: read", name, port);
	}
	if (hybrid_parse_ok(line, len) < 0) {
		hybrid_quote(line, len, quoted, sizeof quoted);
		return status_set(st, ST_UNAVAILABLE,
		    "hybrid vsock handshake with %s port %u failed: unexpected answer \"%s\"", name,
		    port, quoted);
	}
	return 0;
}

int
hybrid_handshake(int fd, uint32_t port, int64_t deadline_ms, struct status *st)
{
	struct sockaddr_un un;
	socklen_t len = sizeof un;
	char name[sizeof un.sun_path + 1];
	bool was_nonblock;
	int r;

	/* Name the VMM socket in messages: the peer of a connected unix socket is its path. */
	memset(&un, 0, sizeof un);
	if (getpeername(fd, (struct sockaddr *)&un, &len) == 0 && un.sun_family == AF_UNIX &&
	    len > offsetof(struct sockaddr_un, sun_path) && un.sun_path[0] != '\0')
		transport_copy(name, un.sun_path, strnlen(un.sun_path, sizeof un.sun_path));
	else
		snprintf(name, sizeof name, "(unnamed socket)");

	r = transport_nonblock_begin(fd, &was_nonblock);
	if (r < 0)
		return status_errno(st, ST_INTERNAL, r,
		    "hybrid vsock handshake with %s port %u failed: fcntl", name, port);
	r = hybrid_client(fd, name, port, deadline_ms, st);
	if (!was_nonblock)
		fd_set_nonblock(fd, false);
	return r;
}

int
hybrid_parse_connect(const char *line, size_t len, uint32_t *port)
{
	char num[HYBRID_LINE_MAX];
	size_t n;

	if (len < 8 || memchr(line, '\0', len) != NULL)
		return -1;
	if (strncasecmp(line, "CONNECT ", 8) != 0)
		return -1;
	/* parse_u32 rejects signs, spaces, '\r' and anything else that is not a digit. */
	n = len - 8;
	if (n >= sizeof num)
		return -1;
	transport_copy(num, line + 8, n);
	return parse_u32(num, port) < 0 ? -1 : 0;
}

int
hybrid_accept_line(int fd, int64_t deadline_ms, uint32_t *port, struct status *st)
{
	char line[HYBRID_LINE_MAX], quoted[HYBRID_LINE_MAX * 4 + 1];
	enum hybrid_read res;
	bool was_nonblock;
	size_t len = 0;
	int r, err = 0;

	r = transport_nonblock_begin(fd, &was_nonblock);
	if (r < 0)
		return status_errno(st, ST_INTERNAL, r, "hybrid vsock handshake: fcntl");
	res = hybrid_read_line(fd, deadline_ms, line, &len, &err);
	if (!was_nonblock)
		fd_set_nonblock(fd, false);

	switch (res) {
	case HYBRID_READ_LINE:
		break;
	case HYBRID_READ_EOF:
		return status_set(st, ST_UNAVAILABLE,
		    "hybrid vsock handshake: peer closed before the CONNECT line");
	case HYBRID_READ_TOO_LONG:
		return status_set(st, ST_INVALID_ARGUMENT,
		    "hybrid vsock handshake: CONNECT line longer than %d bytes", HYBRID_LINE_MAX);
	case HYBRID_READ_TIMEOUT:
		return status_set(st, ST_DEADLINE_EXCEEDED,
		    "hybrid vsock handshake: no CONNECT line within the deadline");
	case HYBRID_READ_ERROR:
	default:
		return status_errno(st, ST_UNAVAILABLE, err, "hybrid vsock handshake: read");
	}
	if (hybrid_parse_connect(line, len, port) < 0) {
		hybrid_quote(line, len, quoted, sizeof quoted);
		return status_set(st, ST_INVALID_ARGUMENT,
		    "hybrid vsock handshake: malformed line \"%s\", expected CONNECT <port>",
		    quoted);
	}
	return 0;
}

/*
 * connect(2) a non-blocking socket by the deadline: 0, -ETIMEDOUT, or -errno. A unix listener
 * with a full backlog answers EAGAIN rather than EINPROGRESS and cannot be polled for room, so
 * that case retries with a short backoff.
 */
static int
transport_connect_fd(
    int fd, const union transport_addr *addr, socklen_t addrlen, int64_t deadline_ms)
{
	socklen_t len = sizeof(int);
	int64_t left;
	int r, err = 0;

	for (;;) {
		if (connect(fd, &addr->sa, addrlen) == 0)
			return 0;
		/* An interrupted non-blocking connect goes on asynchronously, as EINPROGRESS. */
		if (errno == EINPROGRESS || errno == EINTR)
			break;
		if (errno != EAGAIN || addr->sa.sa_family != AF_UNIX)
			return -errno;
		left = deadline_ms - time_mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		poll(NULL, 0,
		    (int)(left < TRANSPORT_EAGAIN_RETRY_MS ? left : TRANSPORT_EAGAIN_RETRY_MS));
	}
	r = fd_wait(fd, POLLOUT, deadline_ms);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

int
transport_connect(const struct endpoint *ep, int timeout_ms, struct status *st)
{
	cleanup_close int fd = -1;
	union transport_addr addr;
	char name[TRANSPORT_NAME_MAX];
	socklen_t addrlen;
	int64_t deadline;
	size_t len;
	int family, r;

	if (timeout_ms <= 0)
		timeout_ms = TRANSPORT_TIMEOUT_DEFAULT_MS;
	deadline = time_mono_ms() + timeout_ms;
	endpoint_format(ep, name, sizeof name);

	memset(&addr, 0, sizeof addr);
	switch (ep->kind) {
	case ENDPOINT_UNIX:
	case ENDPOINT_HYBRID:
		len = strnlen(ep->path, sizeof ep->path);
		if (len == 0 || len >= sizeof addr.un.sun_path)
			return status_set(
			    st, ST_INVALID_ARGUMENT, "connect %s: bad socket path", name);
		family = AF_UNIX;
		addr.un.sun_family = AF_UNIX;
		transport_copy(addr.un.sun_path, ep->path, len);
		addrlen = sizeof addr.un;
		break;
	case ENDPOINT_VSOCK:
		family = AF_VSOCK;
		addr.vm.svm_family = AF_VSOCK;
		addr.vm.svm_cid = ep->cid;
		addr.vm.svm_port = ep->port;
		addrlen = sizeof addr.vm;
		break;
	default:
		return status_set(
		    st, ST_INVALID_ARGUMENT, "connect %s: unknown endpoint kind", name);
	}

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		if (family == AF_VSOCK && errno == EAFNOSUPPORT)
			return status_set(st, ST_UNAVAILABLE,
			    "connect %s: vsock not supported on this host", name);
		return status_errno(
		    st, transport_errno_code(errno), errno, "connect %s: socket", name);
	}
	r = transport_connect_fd(fd, &addr, addrlen, deadline);
	if (r == -ETIMEDOUT)
		return status_set(st, ST_DEADLINE_EXCEEDED, "connect %s: timed out after %d ms",
		    name, timeout_ms);
	if (r < 0)
		return status_errno(st, transport_errno_code(-r), r, "connect %s", name);
	if (ep->kind == ENDPOINT_HYBRID &&
	    hybrid_client(fd, addr.un.sun_path, ep->port, deadline, st) < 0)
		return -1;
	r = fd_set_nonblock(fd, false);
	if (r < 0)
		return status_errno(st, ST_INTERNAL, r, "connect %s: fcntl", name);
	return steal_fd(&fd);
}

/* Create the parent directory of a socket path, 0700, if it does not exist yet. */
static int
transport_make_parent(const char *path, struct status *st)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	struct stat sb;
	int r;

	if (slash == NULL || slash == path)
		return 0;
	transport_copy(dir, path, (size_t)(slash - path));
	if (stat(dir, &sb) == 0)
		return 0;
	if (errno != ENOENT)
		return status_errno(
		    st, ST_FAILED_PRECONDITION, errno, "listen %s: stat %s", path, dir);
	r = mkdir_p(dir, 0700);
	/* mkdir honours the umask; the directory holding a socket must be exactly 0700. */
	if (r == 0 && chmod(dir, 0700) < 0)
		r = -errno;
	if (r < 0)
		return status_errno(
		    st, ST_FAILED_PRECONDITION, r, "listen %s: mkdir %s", path, dir);
	return 0;
}

/*
 * Remove a socket file left by a dead server, but never a live one: a socket file whose
 * connect is refused is stale; one that accepts (or whose backlog is full) is in use.
 */
static int
transport_remove_stale(const char *path, const struct sockaddr_un *un, struct status *st)
{
	cleanup_close int probe = -1;
	struct stat sb;

	if (lstat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		return status_errno(st, ST_FAILED_PRECONDITION, errno, "listen %s: lstat", path);
	}
	if (!S_ISSOCK(sb.st_mode))
		return status_set(
		    st, ST_ALREADY_EXISTS, "listen %s: exists and is not a socket", path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return status_errno(
		    st, transport_errno_code(errno), errno, "listen %s: socket", path);
	if (connect(probe, (const struct sockaddr *)un, sizeof *un) == 0 || errno == EAGAIN)
		return status_set(st, ST_ALREADY_EXISTS, "socket %s is in use", path);
	if (errno == ENOENT)
		return 0;
	if (errno != ECONNREFUSED)
		return status_errno(st, ST_FAILED_PRECONDITION, errno,
		    "listen %s: probing the existing socket", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return status_errno(st, ST_FAILED_PRECONDITION, errno,
		    "listen %s: removing the stale socket", path);
	return 0;
}

int
transport_listen_unix(const char *path, mode_t mode, int backlog, struct status *st)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	cleanup_close int fd = -1;
	size_t len = strlen(path);
	int err;

	if (len == 0)
		return status_set(st, ST_INVALID_ARGUMENT, "listen: empty socket path");
	if (len >= sizeof un.sun_path)
		return status_set(st, ST_INVALID_ARGUMENT, "listen %s: path too long", path);
	transport_copy(un.sun_path, path, len);
	if (transport_make_parent(path, st) < 0 || transport_remove_stale(path, &un, st) < 0)
		return -1;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return status_errno(
		    st, transport_errno_code(errno), errno, "listen %s: socket", path);
	/*
	 * bind() creates the file with the socket inode's mode minus the umask, so setting the
	 * mode first means the file is never more open than asked; chmod() afterwards makes it
	 * exact whatever the umask (changing the umask itself is process-wide, not thread-safe).
	 */
	if (fchmod(fd, mode) < 0)
		return status_errno(st, ST_INTERNAL, errno, "listen %s: fchmod", path);
	if (bind(fd, (struct sockaddr *)&un, sizeof un) < 0) {
		if (errno == EADDRINUSE)
			return status_set(st, ST_ALREADY_EXISTS, "socket %s is in use", path);
		return status_errno(
		    st, transport_errno_code(errno), errno, "listen %s: bind", path);
	}
	if (chmod(path, mode) < 0 || listen(fd, backlog) < 0) {
		err = errno;
		unlink(path);
		return status_errno(st, ST_INTERNAL, err, "listen %s", path);
	}
	return steal_fd(&fd);
}

int
transport_listen_vsock(uint32_t port, int backlog, struct status *st)
{
	struct sockaddr_vm vm;
	cleanup_close int fd = -1;

	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		if (errno == EAFNOSUPPORT)
			return status_set(st, ST_UNAVAILABLE,
			    "listen vsock port %u: vsock not supported on this host", port);
		return status_errno(
		    st, transport_errno_code(errno), errno, "listen vsock port %u: socket", port);
	}
	memset(&vm, 0, sizeof vm);
	vm.svm_family = AF_VSOCK;
	vm.svm_cid = VMADDR_CID_ANY;
	vm.svm_port = port;
	if (bind(fd, (struct sockaddr *)&vm, sizeof vm) < 0) {
		if (errno == EADDRINUSE)
			return status_set(st, ST_ALREADY_EXISTS, "vsock port %u is in use", port);
		return status_errno(
		    st, transport_errno_code(errno), errno, "listen vsock port %u: bind", port);
	}
	if (listen(fd, backlog) < 0)
		return status_errno(st, ST_INTERNAL, errno, "listen vsock port %u", port);
	return steal_fd(&fd);
}

int
transport_accept(int listen_fd, bool nonblock)
{
	int flags = SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
	int fd;

	do
		fd = accept4(listen_fd, NULL, NULL, flags);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int
transport_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	if (pid != NULL)
		*pid = cred.pid;
	if (uid != NULL)
		*uid = cred.uid;
	if (gid != NULL)
		*gid = cred.gid;
	return 0;
}
