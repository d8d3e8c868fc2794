/*
 * test_transport.c: endpoint strings, the hybrid vsock handshake (both sides), unix listen,
 * connect, accept and peer credentials, and the vsock paths.
 *
 * Everything runs on Unix sockets in a private mkdtemp directory. Handshake peers are mostly
 * the far end of a socketpair whose answer is written before the call (the socket buffers
 * it), so no timing is involved; end-to-end cases run the server on a pthread. The vsock
 * "not supported" path is forced in a forked child with a seccomp filter that fails
 * socket(AF_VSOCK) with EAFNOSUPPORT, so it is checked on every host.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/vm_sockets.h>

#include "status.h"
#include "testlib.h"
#include "transport.h"
#include "util.h"
#include "unit.h"

static char tmpdir[64];
static int fd_baseline;

/* A path inside the private temporary directory (a fresh static buffer per slot). */
static const char *
tpath(int slot, const char *name)
{
	static char bufs[8][256];

	snprintf(bufs[slot], sizeof bufs[slot], "%s/%s", tmpdir, name);
	return bufs[slot];
}

static bool
fd_cloexec(int fd)
{
	int f = fcntl(fd, F_GETFD);

	return f >= 0 && (f & FD_CLOEXEC);
}

static bool
fd_nonblock(int fd)
{
	int f = fcntl(fd, F_GETFL);

	return f >= 0 && (f & O_NONBLOCK);
}

/* Read what is buffered on fd right now (non-blocking), NUL-terminated; returns the count. */
static size_t
drain(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n + 1 < len) {
		r = recv(fd, buf + n, len - 1 - n, MSG_DONTWAIT);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	return n;
}

/* Read up to len bytes by a deadline ms from now (so a broken peer fails, never hangs). */
static size_t
read_by(int fd, char *buf, size_t len, int ms)
{
	int64_t deadline = time_mono_ms() + ms;
	size_t n = 0;
	ssize_t r;

	while (n < len && fd_wait(fd, POLLIN, deadline) == 1) {
		r = recv(fd, buf + n, len - n, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (r > 0)
			n += (size_t)r;
	}
	return n;
}

static void
pair(int sv[2])
{
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
}

/*
 * Send all of buf with MSG_NOSIGNAL: SIGPIPE is left at its default so that code under test
 * which forgets MSG_NOSIGNAL kills the run, but the test's own writes must not.
 */
static bool
send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t r;

	while (len > 0) {
		r = send(fd, p, len, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		len -= (size_t)r;
	}
	return true;
}

static void
put(int fd, const void *buf, size_t len)
{
	CU_ASSERT_FATAL(send_all(fd, buf, len));
}

/* ---- endpoint_parse / endpoint_format ---- */

static void
test_endpoint_parse_good(void)
{
	static char longunix[5 + 107 + 1], longuds[4 + 107 + 3];
	struct {
		const char *s;
		enum endpoint_kind kind;
		const char *path;
		uint32_t cid, port;
	} cases[] = {
	    {"unix:/run/vmshim/ctl.sock", ENDPOINT_UNIX, "/run/vmshim/ctl.sock", 0, 0},
	    {"unix:relative", ENDPOINT_UNIX, "relative", 0, 0},
	    {"unix:/a:b:1", ENDPOINT_UNIX, "/a:b:1", 0, 0},
	    {"vsock:3:1024", ENDPOINT_VSOCK, "", 3, 1024},
	    {"vsock:0:0", ENDPOINT_VSOCK, "", 0, 0},
	    {"vsock:4294967295:4294967295", ENDPOINT_VSOCK, "", 4294967295u, 4294967295u},
	    {"uds:/run/vm/g1/vsock.sock:1024", ENDPOINT_HYBRID, "/run/vm/g1/vsock.sock", 0, 1024},
	    {"uds:/a:b/c:d:5", ENDPOINT_HYBRID, "/a:b/c:d", 0, 5},
	    {"uds:/p:0", ENDPOINT_HYBRID, "/p", 0, 0},
	    {"uds:/p:4294967295", ENDPOINT_HYBRID, "/p", 0, 4294967295u},
	    {longunix, ENDPOINT_UNIX, longunix + 5, 0, 0},
	    {longuds, ENDPOINT_HYBRID, NULL, 0, 7},
	};
	char out[256];
	struct endpoint ep;
	struct status st;
	size_t i;

	/* The longest paths that fit sun_path with its NUL: 107 bytes. */
	memcpy(longunix, "unix:", 5);
	memset(longunix + 5, 'u', 107);
	memcpy(longuds, "uds:", 4);
	memset(longuds + 4, 'h', 107);
	memcpy(longuds + 4 + 107, ":7", 3);

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		status_clear(&st);
		CU_ASSERT_EQUAL_FATAL(endpoint_parse(cases[i].s, &ep, &st), 0);
		CU_ASSERT_EQUAL(ep.kind, cases[i].kind);
		CU_ASSERT_EQUAL(ep.cid, cases[i].cid);
		CU_ASSERT_EQUAL(ep.port, cases[i].port);
		if (cases[i].path != NULL) {
			CU_ASSERT_STRING_EQUAL(ep.path, cases[i].path);
		} else {
			CU_ASSERT_EQUAL(strlen(ep.path), 107);
		}
		endpoint_format(&ep, out, sizeof out);
		CU_ASSERT_STRING_EQUAL(out, cases[i].s);
	}
}

static void
test_endpoint_parse_bad(void)
{
	static char longunix[5 + 108 + 1], longuds[4 + 108 + 3];
	struct {
		const char *s;
		const char *why;
	} cases[] = {
	    {"", "unknown scheme"},
	    {"tcp:127.0.0.1:80", "unknown scheme"},
	    {"unix", "unknown scheme"},
	    {"UNIX:/x", "unknown scheme"},
	    {"/run/x.sock", "unknown scheme"},
	    {"unix:", "empty path"},
	    {longunix, "path too long"},
	    {"vsock:3", "missing port"},
	    {"vsock::1024", "bad cid"},
	    {"vsock:x:1024", "bad cid"},
	    {"vsock:4294967296:1", "bad cid"},
	    {"vsock:3:", "bad port"},
	    {"vsock:3:-1", "bad port"},
	    {"vsock:3:+1", "bad port"},
	    {"vsock:3: 1", "bad port"},
	    {"vsock:3:4294967296", "bad port"},
	    {"vsock:3:1024:5", "bad port"},
	    {"uds:/p", "missing port"},
	    {"uds::5", "empty path"},
	    {"uds:/p:", "bad port"},
	    {"uds:/p:x", "bad port"},
	    {"uds:/p:4294967296", "bad port"},
	    {"uds:/p:1024\n", "bad port"},
	    {longuds, "path too long"},
	};
	char want[128];
	struct endpoint ep;
	struct status st;
	size_t i;

	memcpy(longunix, "unix:", 5);
	memset(longunix + 5, 'u', 108);
	memcpy(longuds, "uds:", 4);
	memset(longuds + 4, 'h', 108);
	memcpy(longuds + 4 + 108, ":7", 3);

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		status_clear(&st);
		CU_ASSERT_EQUAL(endpoint_parse(cases[i].s, &ep, &st), -1);
		CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
		if (strstr(st.msg, cases[i].why) == NULL)
			fprintf(stderr, "\n  \"%s\": got \"%s\"\n", cases[i].s, st.msg);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, cases[i].why));
		snprintf(want, sizeof want, "endpoint \"%.40s", cases[i].s);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, want));
	}
	endpoint_parse("ftp:x", &ep, &st);
	CU_ASSERT_STRING_EQUAL(
	    st.msg, "endpoint \"ftp:x\": unknown scheme, expected unix:, vsock: or uds:");
}

/* ---- hybrid_parse_connect ---- */

static void
test_hybrid_parse_connect(void)
{
	struct {
		const char *line;
		size_t len; /* 0: strlen */
		int ret;
		uint32_t port;
	} cases[] = {
	    {"CONNECT 1024", 0, 0, 1024}, {"connect 1024", 0, 0, 1024}, {"CoNnEcT 1", 0, 0, 1},
	    {"CONNECT 0", 0, 0, 0}, {"CONNECT 4294967295", 0, 0, 4294967295u},
	    {"CONNECT 0000000000000000000001024", 0, 0, 1024}, {"CONNECT  1024", 0, -1, 0},
	    {"CONNECT -1", 0, -1, 0}, {"CONNECT +1", 0, -1, 0}, {"CONNECT 4294967296", 0, -1, 0},
	    {"CONNECT 1024\r", 0, -1, 0}, {"CONNECT 1024 ", 0, -1, 0}, {"CONNECT 10x", 0, -1, 0},
	    {"CONNECT\t1024", 0, -1, 0}, {"CONNECT1024", 0, -1, 0}, {"CONNECT ", 0, -1, 0},
	    {"CONNECT", 0, -1, 0}, {"CONNEC 1024", 0, -1, 0}, {" CONNECT 1024", 0, -1, 0},
	    {"", 0, -1, 0},
	    {"CONNECT 12\0"
	     "34",
		13, -1, 0},		 /* embedded NUL */
	    {"CONNECT 1024", 10, 0, 10}, /* only len bytes count */
	};
	uint32_t port;
	size_t i, len;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		len = cases[i].len ? cases[i].len : strlen(cases[i].line);
		port = 77;
		CU_ASSERT_EQUAL(hybrid_parse_connect(cases[i].line, len, &port), cases[i].ret);
		if (cases[i].ret == 0) {
			CU_ASSERT_EQUAL(port, cases[i].port);
		}
	}
}

/* ---- hybrid_handshake (client) ---- */

/* Run the client handshake on one end of a socketpair whose other end already sent `answer`. */
static int
handshake_with(const char *answer, size_t len, uint32_t port, int sv[2], struct status *st)
{
	pair(sv);
	if (len > 0)
		put(sv[1], answer, len);
	status_clear(st);
	return hybrid_handshake(sv[0], port, time_mono_ms() + 2000, st);
}

static void
test_handshake_ok(void)
{
	char buf[64];
	struct status st;
	int sv[2];

	CU_ASSERT_EQUAL(handshake_with("OK 1073741824\n", 14, 1024, sv, &st), 0);
	CU_ASSERT_EQUAL(st.code, ST_OK);
	/* The request went out exactly. */
	CU_ASSERT_EQUAL(drain(sv[1], buf, sizeof buf), 13);
	CU_ASSERT_STRING_EQUAL(buf, "CONNECT 1024\n");
	/* A blocking fd comes back blocking. */
	CU_ASSERT_FALSE(fd_nonblock(sv[0]));
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_leaves_data(void)
{
	char buf[64];
	struct status st;
	int sv[2];

	CU_ASSERT_EQUAL(handshake_with("OK 5\nHELLO", 10, 5, sv, &st), 0);
	/* Take the request first: closing with unread data would reset the connection. */
	CU_ASSERT_EQUAL(drain(sv[1], buf, sizeof buf), 10);
	close(sv[1]);
	/* Everything after the newline is still there, and nothing else. */
	CU_ASSERT_EQUAL(read_full(sv[0], buf, 5), 0);
	CU_ASSERT_EQUAL(memcmp(buf, "HELLO", 5), 0);
	CU_ASSERT_EQUAL(read(sv[0], buf, sizeof buf), 0);
	close(sv[0]);
}

static void
test_handshake_nonblocking_fd_stays(void)
{
	struct status st;
	int sv[2];

	pair(sv);
	put(sv[1], "OK 9\n", 5);
	CU_ASSERT_EQUAL_FATAL(fd_set_nonblock(sv[0], true), 0);
	CU_ASSERT_EQUAL(hybrid_handshake(sv[0], 9, time_mono_ms() + 2000, &st), 0);
	CU_ASSERT_TRUE(fd_nonblock(sv[0]));
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_garbage(void)
{
	static const struct {
		const char *answer;
		size_t len;
	} cases[] = {
	    {"NO\n", 3},
	    {"OK\n", 3},
	    {"OK x\n", 5},
	    {"OK 12 \n", 7},
	    {"OK  12\n", 7},
	    {"OK -1\n", 6},
	    {"OK 4294967296\n", 14},
	    {"ok 12\n", 6},
	    {"OK 12\r\n", 7},
	    {"\n", 1},
	    {"OK 5\0\n", 6},
	    {"CONNECT 5\n", 10},
	};
	struct status st;
	size_t i;
	int sv[2];

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		CU_ASSERT_EQUAL(handshake_with(cases[i].answer, cases[i].len, 1024, sv, &st), -1);
		CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "hybrid vsock handshake with"));
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "port 1024 failed: unexpected answer"));
		close(sv[0]);
		close(sv[1]);
	}
	/* Control characters are quoted, not copied into the message. */
	handshake_with("OK 12\r\n", 7, 1024, sv, &st);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "\"OK 12\\x0d\""));
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_line_limit(void)
{
	char line[64], buf[64];
	struct status st;
	int sv[2];

	/* "OK " + 28 digits + '\n' is 32 bytes: the longest answer there may be. */
	snprintf(line, sizeof line, "OK %027d7\n", 0);
	CU_ASSERT_EQUAL_FATAL(strlen(line), HYBRID_LINE_MAX);
	CU_ASSERT_EQUAL(handshake_with(line, strlen(line), 1, sv, &st), 0);
	close(sv[0]);
	close(sv[1]);

	/* One more digit is one byte too many; exactly 32 bytes are consumed. */
	snprintf(line, sizeof line, "OK %028d7\nXY", 0);
	CU_ASSERT_EQUAL(handshake_with(line, strlen(line), 1, sv, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "longer than 32 bytes"));
	close(sv[1]);
	CU_ASSERT_EQUAL(drain(sv[0], buf, sizeof buf), 3);
	CU_ASSERT_STRING_EQUAL(buf, "\nXY");
	close(sv[0]);

	/* 40 bytes and no newline. */
	memset(line, 'A', 40);
	CU_ASSERT_EQUAL(handshake_with(line, 40, 1, sv, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "longer than 32 bytes"));
	close(sv[1]);
	CU_ASSERT_EQUAL(drain(sv[0], buf, sizeof buf), 40 - HYBRID_LINE_MAX);
	close(sv[0]);
}

static void
test_handshake_eof(void)
{
	struct status st;
	int sv[2];

	/* The VMM read the request and hung up. */
	pair(sv);
	CU_ASSERT_FATAL(shutdown(sv[1], SHUT_WR) == 0);
	CU_ASSERT_EQUAL(hybrid_handshake(sv[0], 3, time_mono_ms() + 2000, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "closed before the answer"));
	close(sv[0]);
	close(sv[1]);

	/* Half an answer, then EOF. */
	pair(sv);
	put(sv[1], "OK 3", 4);
	CU_ASSERT_FATAL(shutdown(sv[1], SHUT_WR) == 0);
	CU_ASSERT_EQUAL(hybrid_handshake(sv[0], 3, time_mono_ms() + 2000, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	close(sv[0]);
	close(sv[1]);

	/* The peer is gone before the request: EPIPE, and no SIGPIPE kills us. */
	pair(sv);
	close(sv[1]);
	CU_ASSERT_EQUAL(hybrid_handshake(sv[0], 3, time_mono_ms() + 2000, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "port 3 failed"));
	close(sv[0]);
}

static void
test_handshake_deadline(void)
{
	struct status st;
	int64_t t0, elapsed;
	int sv[2];

	pair(sv);
	t0 = time_mono_ms();
	CU_ASSERT_EQUAL(hybrid_handshake(sv[0], 3, t0 + 200, &st), -1);
	elapsed = time_mono_ms() - t0;
	CU_ASSERT_EQUAL(st.code, ST_DEADLINE_EXCEEDED);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "no answer within the deadline"));
	CU_ASSERT(elapsed >= 190);
	CU_ASSERT(elapsed < 3000);
	close(sv[0]);
	close(sv[1]);
}

/* ---- hybrid_accept_line (server) ---- */

static int
accept_with(const char *req, size_t len, int sv[2], uint32_t *port, struct status *st)
{
	pair(sv);
	if (len > 0)
		put(sv[1], req, len);
	status_clear(st);
	*port = 77;
	return hybrid_accept_line(sv[0], time_mono_ms() + 2000, port, st);
}

static void
test_accept_line(void)
{
	char line[64], buf[64];
	struct status st;
	uint32_t port;
	int sv[2];

	CU_ASSERT_EQUAL(accept_with("CONNECT 1024\nDATA", 17, sv, &port, &st), 0);
	CU_ASSERT_EQUAL(port, 1024);
	CU_ASSERT_FALSE(fd_nonblock(sv[0]));
	close(sv[1]);
	CU_ASSERT_EQUAL(drain(sv[0], buf, sizeof buf), 4);
	CU_ASSERT_STRING_EQUAL(buf, "DATA");
	close(sv[0]);

	/* 32 bytes with the newline is accepted... */
	snprintf(line, sizeof line, "CONNECT %019d1024\n", 0);
	CU_ASSERT_EQUAL_FATAL(strlen(line), HYBRID_LINE_MAX);
	CU_ASSERT_EQUAL(accept_with(line, strlen(line), sv, &port, &st), 0);
	CU_ASSERT_EQUAL(port, 1024);
	close(sv[0]);
	close(sv[1]);

	/* ...33 is not, and the 33rd byte stays unread. */
	snprintf(line, sizeof line, "CONNECT %020d1024\n", 0);
	CU_ASSERT_EQUAL(accept_with(line, strlen(line), sv, &port, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "longer than 32 bytes"));
	close(sv[1]);
	CU_ASSERT_EQUAL(drain(sv[0], buf, sizeof buf), 1);
	close(sv[0]);

	/* 33 bytes, no newline. */
	memset(line, 'C', 33);
	CU_ASSERT_EQUAL(accept_with(line, 33, sv, &port, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	close(sv[1]);
	CU_ASSERT_EQUAL(drain(sv[0], buf, sizeof buf), 1);
	close(sv[0]);

	/* Malformed lines. */
	CU_ASSERT_EQUAL(accept_with("CONNECT 1024\r\n", 14, sv, &port, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "malformed line \"CONNECT 1024\\x0d\""));
	close(sv[0]);
	close(sv[1]);
	CU_ASSERT_EQUAL(accept_with("OK 1\n", 5, sv, &port, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	close(sv[0]);
	close(sv[1]);

	/* EOF before a line. */
	pair(sv);
	put(sv[1], "CONNECT 1", 9);
	close(sv[1]);
	CU_ASSERT_EQUAL(hybrid_accept_line(sv[0], time_mono_ms() + 2000, &port, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	close(sv[0]);
}

static void
test_accept_line_deadline(void)
{
	struct status st;
	int64_t t0, elapsed;
	uint32_t port;
	int sv[2];

	pair(sv);
	CU_ASSERT_EQUAL_FATAL(fd_set_nonblock(sv[0], true), 0);
	t0 = time_mono_ms();
	CU_ASSERT_EQUAL(hybrid_accept_line(sv[0], t0 + 200, &port, &st), -1);
	elapsed = time_mono_ms() - t0;
	CU_ASSERT_EQUAL(st.code, ST_DEADLINE_EXCEEDED);
	CU_ASSERT(elapsed >= 190);
	CU_ASSERT(elapsed < 3000);
	CU_ASSERT_TRUE(fd_nonblock(sv[0]));
	close(sv[0]);
	close(sv[1]);
}

/* ---- listen, connect, accept, credentials ---- */

static void
test_listen_unix_modes(void)
{
	const char *sock = tpath(0, "a/b/ctl.sock");
	const char *sock2 = tpath(1, "a/b/wide.sock");
	const char *sock3 = tpath(4, "c/ctl.sock");
	struct status st;
	struct stat sb;
	mode_t old;
	int fd, fd2, fd3;

	old = umask(022);
	fd = transport_listen_unix(sock, 0600, 16, &st);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_TRUE(fd_cloexec(fd));
	CU_ASSERT_TRUE(fd_nonblock(fd));
	CU_ASSERT_EQUAL_FATAL(lstat(sock, &sb), 0);
	CU_ASSERT_TRUE(S_ISSOCK(sb.st_mode));
	CU_ASSERT_EQUAL(sb.st_mode & 07777, 0600);
	CU_ASSERT_EQUAL_FATAL(stat(tpath(2, "a/b"), &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 07777, 0700);

	/* The modes are exact whatever the umask, even one that strips the owner's bits. */
	umask(0277);
	fd2 = transport_listen_unix(sock2, 0660, 16, &st);
	fd3 = transport_listen_unix(sock3, 0600, 16, &st);
	umask(old);
	CU_ASSERT_FATAL(fd2 >= 0);
	CU_ASSERT_FATAL(fd3 >= 0);
	CU_ASSERT_EQUAL_FATAL(lstat(sock2, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 07777, 0660);
	CU_ASSERT_EQUAL_FATAL(lstat(sock3, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 07777, 0600);
	CU_ASSERT_EQUAL_FATAL(stat(tpath(3, "c"), &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 07777, 0700);
	close(fd);
	close(fd2);
	close(fd3);
}

static void
test_listen_unix_stale_and_live(void)
{
	const char *sock = tpath(0, "stale.sock");
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct endpoint ep;
	struct status st;
	char name[160];
	int s, lfd, lfd2, c, a;

	/* A socket file nobody listens on any more. */
	snprintf(un.sun_path, sizeof un.sun_path, "%s", sock);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_FATAL(bind(s, (struct sockaddr *)&un, sizeof un) == 0);
	close(s);
	CU_ASSERT_EQUAL_FATAL(access(sock, F_OK), 0);

	lfd = transport_listen_unix(sock, 0600, 16, &st);
	CU_ASSERT_FATAL(lfd >= 0);
	snprintf(name, sizeof name, "unix:%s", sock);
	CU_ASSERT_EQUAL_FATAL(endpoint_parse(name, &ep, &st), 0);
	c = transport_connect(&ep, 2000, &st);
	CU_ASSERT_FATAL(c >= 0);
	close(c);

	/* A live one is not stolen, and keeps serving. */
	lfd2 = transport_listen_unix(sock, 0600, 16, &st);
	CU_ASSERT_EQUAL(lfd2, -1);
	CU_ASSERT_EQUAL(st.code, ST_ALREADY_EXISTS);
	snprintf(name, sizeof name, "socket %s is in use", sock);
	CU_ASSERT_STRING_EQUAL(st.msg, name);
	c = transport_connect(&ep, 2000, &st);
	CU_ASSERT(c >= 0);
	CU_ASSERT_EQUAL(fd_wait(lfd, POLLIN, time_mono_ms() + 2000), 1);
	a = transport_accept(lfd, false);
	CU_ASSERT(a >= 0);
	close(a);
	close(c);
	close(lfd);
}

static void
test_listen_unix_refuses(void)
{
	const char *file = tpath(0, "plain-file");
	char longpath[200];
	struct status st;
	struct stat sb;
	int fd;

	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	CU_ASSERT_EQUAL(transport_listen_unix(file, 0600, 16, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_ALREADY_EXISTS);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "not a socket"));
	CU_ASSERT_EQUAL(lstat(file, &sb), 0);
	CU_ASSERT_TRUE(S_ISREG(sb.st_mode));

	memset(longpath, 'x', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	CU_ASSERT_EQUAL(transport_listen_unix(longpath, 0600, 16, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(transport_listen_unix("", 0600, 16, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
}

static void
test_connect_accept_cred(void)
{
	const char *sock = tpath(0, "cred.sock");
	struct endpoint ep;
	struct status st;
	char name[160], c2;
	int lfd, c, a, nb, p[2];
	pid_t pid;
	uid_t uid;
	gid_t gid;

	lfd = transport_listen_unix(sock, 0600, 16, &st);
	CU_ASSERT_FATAL(lfd >= 0);
	/* Nothing pending on a non-blocking listener. */
	CU_ASSERT_EQUAL(transport_accept(lfd, false), -EAGAIN);

	snprintf(name, sizeof name, "unix:%s", sock);
	CU_ASSERT_EQUAL_FATAL(endpoint_parse(name, &ep, &st), 0);
	c = transport_connect(&ep, 0, &st);
	CU_ASSERT_FATAL(c >= 0);
	CU_ASSERT_TRUE(fd_cloexec(c));
	CU_ASSERT_FALSE(fd_nonblock(c));

	CU_ASSERT_EQUAL(fd_wait(lfd, POLLIN, time_mono_ms() + 2000), 1);
	a = transport_accept(lfd, false);
	CU_ASSERT_FATAL(a >= 0);
	CU_ASSERT_TRUE(fd_cloexec(a));
	CU_ASSERT_FALSE(fd_nonblock(a));

	pid = 0;
	uid = gid = (uid_t)-1;
	CU_ASSERT_EQUAL(transport_peer_cred(a, &pid, &uid, &gid), 0);
	CU_ASSERT_EQUAL(pid, getpid());
	CU_ASSERT_EQUAL(uid, getuid());
	CU_ASSERT_EQUAL(gid, getgid());
	CU_ASSERT_EQUAL(transport_peer_cred(c, &pid, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pid, getpid());

	/* The two ends are connected to each other. */
	put(c, "z", 1);
	CU_ASSERT_EQUAL(read_full(a, &c2, 1), 0);
	CU_ASSERT_EQUAL(c2, 'z');
	close(a);
	close(c);

	/* Non-blocking accept. */
	c = transport_connect(&ep, 2000, &st);
	CU_ASSERT_FATAL(c >= 0);
	CU_ASSERT_EQUAL(fd_wait(lfd, POLLIN, time_mono_ms() + 2000), 1);
	nb = transport_accept(lfd, true);
	CU_ASSERT_FATAL(nb >= 0);
	CU_ASSERT_TRUE(fd_cloexec(nb));
	CU_ASSERT_TRUE(fd_nonblock(nb));
	close(nb);
	close(c);
	close(lfd);

	/* Not a socket. */
	CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
	CU_ASSERT_EQUAL(transport_peer_cred(p[0], &pid, &uid, &gid), -ENOTSOCK);
	CU_ASSERT(transport_accept(p[0], false) < 0);
	close(p[0]);
	close(p[1]);
}

static void
test_connect_missing_and_refused(void)
{
	const char *missing = tpath(0, "nobody-here.sock");
	const char *dead = tpath(1, "dead.sock");
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct endpoint ep;
	struct status st;
	char name[160];
	int s;

	snprintf(name, sizeof name, "unix:%s", missing);
	CU_ASSERT_EQUAL_FATAL(endpoint_parse(name, &ep, &st), 0);
	CU_ASSERT_EQUAL(transport_connect(&ep, 1000, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, name));

	/* A uds endpoint fails before the handshake the same way. */
	snprintf(name, sizeof name, "uds:%s:1024", missing);
	CU_ASSERT_EQUAL_FATAL(endpoint_parse(name, &ep, &st), 0);
	CU_ASSERT_EQUAL(transport_connect(&ep, 1000, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, name));

	/* A socket file with no listener: refused. */
	snprintf(un.sun_path, sizeof un.sun_path, "%s", dead);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_FATAL(bind(s, (struct sockaddr *)&un, sizeof un) == 0);
	close(s);
	snprintf(name, sizeof name, "unix:%s", dead);
	CU_ASSERT_EQUAL_FATAL(endpoint_parse(name, &ep, &st), 0);
	CU_ASSERT_EQUAL(transport_connect(&ep, 1000, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "refused"));
}

static void
test_connect_deadline_backlog_full(void)
{
	const char *sock = tpath(0, "full.sock");
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct endpoint ep;
	struct status st;
	char name[160];
	int lfd, fill[8], nfill = 0, r;
	int64_t t0, elapsed;

	/* A listener that never accepts, its backlog filled until connects would block. */
	lfd = transport_listen_unix(sock, 0600, 0, &st);
	CU_ASSERT_FATAL(lfd >= 0);
	snprintf(un.sun_path, sizeof un.sun_path, "%s", sock);
	for (r = 0; r == 0 && nfill < (int)ARRAY_SIZE(fill); nfill++) {
		fill[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		CU_ASSERT_FATAL(fill[nfill] >= 0);
		r = connect(fill[nfill], (struct sockaddr *)&un, sizeof un);
	}
	CU_ASSERT_FATAL(r < 0 && errno == EAGAIN);

	snprintf(name, sizeof name, "unix:%s", sock);
	CU_ASSERT_EQUAL_FATAL(endpoint_parse(name, &ep, &st), 0);
	t0 = time_mono_ms();
	CU_ASSERT_EQUAL(transport_connect(&ep, 200, &st), -1);
	elapsed = time_mono_ms() - t0;
	CU_ASSERT_EQUAL(st.code, ST_DEADLINE_EXCEEDED);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, name));
	CU_ASSERT(elapsed >= 190);
	CU_ASSERT(elapsed < 3000);
	while (nfill > 0)
		close(fill[--nfill]);
	close(lfd);
}

/* ---- uds end to end: a VMM-side server on a thread ---- */

struct vmm {
	int lfd;
	const char *answer; /* written after the CONNECT line */
	uint32_t port;	    /* what the client asked for */
	int accept_ret;
	char got[8]; /* what the client sent after the handshake */
};

static void *
vmm_run(void *arg)
{
	struct vmm *v = arg;
	struct status st;
	int fd;

	if (fd_wait(v->lfd, POLLIN, time_mono_ms() + 5000) != 1)
		return NULL;
	fd = transport_accept(v->lfd, false);
	if (fd < 0)
		return NULL;
	v->accept_ret = hybrid_accept_line(fd, time_mono_ms() + 5000, &v->port, &st);
	if (v->accept_ret == 0 && send_all(fd, v->answer, strlen(v->answer)))
		read_by(fd, v->got, 4, 5000);
	close(fd);
	return NULL;
}

static void
test_connect_uds(void)
{
	const char *sock = tpath(0, "vm/vsock.sock");
	struct vmm v = {.answer = "OK 1073741824\nPAYLOAD", .accept_ret = -2};
	struct endpoint ep;
	struct status st;
	char name[160], buf[16];
	pthread_t th;
	int fd;

	v.lfd = transport_listen_unix(sock, 0600, 16, &st);
	CU_ASSERT_FATAL(v.lfd >= 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, vmm_run, &v), 0);
	snprintf(name, sizeof name, "uds:%s:4242", sock);
	CU_ASSERT_EQUAL_FATAL(endpoint_parse(name, &ep, &st), 0);
	fd = transport_connect(&ep, 5000, &st);
	CU_ASSERT(fd >= 0);
	if (fd >= 0) {
		CU_ASSERT_TRUE(fd_cloexec(fd));
		CU_ASSERT_FALSE(fd_nonblock(fd));
		CU_ASSERT_EQUAL(read_by(fd, buf, 7, 5000), 7);
		CU_ASSERT_EQUAL(memcmp(buf, "PAYLOAD", 7), 0);
		put(fd, "PING", 4);
	}
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(v.accept_ret, 0);
	CU_ASSERT_EQUAL(v.port, 4242);
	CU_ASSERT_STRING_EQUAL(v.got, "PING");
	if (fd >= 0)
		close(fd);
	close(v.lfd);

	/* A VMM that says no: the message names the socket and the port. */
	memset(&v, 0, sizeof v);
	v.lfd = transport_listen_unix(sock, 0600, 16, &st);
	v.answer = "NO\n";
	v.accept_ret = -2;
	CU_ASSERT_FATAL(v.lfd >= 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, vmm_run, &v), 0);
	CU_ASSERT_EQUAL(transport_connect(&ep, 5000, &st), -1);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	snprintf(name, sizeof name, "hybrid vsock handshake with %s port 4242 failed", sock);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, name));
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "unexpected answer \"NO\""));
	close(v.lfd);

	/* hybrid_handshake names a connected socket's peer path by itself. */
	{
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		int lfd = transport_listen_unix(sock, 0600, 16, &st), c, a;

		CU_ASSERT_FATAL(lfd >= 0);
		snprintf(un.sun_path, sizeof un.sun_path, "%s", sock);
		c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CU_ASSERT_FATAL(connect(c, (struct sockaddr *)&un, sizeof un) == 0);
		a = transport_accept(lfd, false);
		CU_ASSERT_FATAL(a >= 0);
		put(a, "NO\n", 3);
		CU_ASSERT_EQUAL(hybrid_handshake(c, 9, time_mono_ms() + 2000, &st), -1);
		snprintf(name, sizeof name, "hybrid vsock handshake with %s port 9 failed", sock);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, name));
		close(a);
		close(c);
		close(lfd);
	}
}

/* ---- vsock ---- */

static void
check_vsock_unsupported(void)
{
	struct endpoint ep;
	struct status st;

	CU_ASSERT_EQUAL_FATAL(endpoint_parse("vsock:3:1024", &ep, &st), 0);
	CU_ASSERT_EQUAL(transport_connect(&ep, 1000, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_STRING_EQUAL(st.msg, "connect vsock:3:1024: vsock not supported on this host");
	CU_ASSERT_EQUAL(transport_listen_vsock(1024, 16, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "vsock not supported on this host"));
}

static void
test_vsock(void)
{
	struct endpoint ep;
	struct status st;
	char name[64];
	int probe, lfd, lfd2, c, a;
	uint32_t port = 0x5a000000u + (uint32_t)getpid() % 0x10000;

	probe = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0) {
		CU_ASSERT_EQUAL(errno, EAFNOSUPPORT);
		check_vsock_unsupported();
		return;
	}
	close(probe);

	lfd = transport_listen_vsock(port, 16, &st);
	CU_ASSERT_FATAL(lfd >= 0);
	CU_ASSERT_TRUE(fd_cloexec(lfd));
	CU_ASSERT_TRUE(fd_nonblock(lfd));
	lfd2 = transport_listen_vsock(port, 16, &st);
	CU_ASSERT_EQUAL(lfd2, -1);
	CU_ASSERT_EQUAL(st.code, ST_ALREADY_EXISTS);

	/*
	 * Connect to ourselves through the local CID. With the vsock loopback transport this
	 * succeeds; without it the connect cannot complete, and must fail by the deadline or as
	 * unavailable, naming the endpoint.
	 */
	snprintf(name, sizeof name, "vsock:%u:%u", VMADDR_CID_LOCAL, port);
	CU_ASSERT_EQUAL_FATAL(endpoint_parse(name, &ep, &st), 0);
	c = transport_connect(&ep, 500, &st);
	if (c >= 0) {
		CU_ASSERT_TRUE(fd_cloexec(c));
		CU_ASSERT_FALSE(fd_nonblock(c));
		CU_ASSERT_EQUAL(fd_wait(lfd, POLLIN, time_mono_ms() + 2000), 1);
		a = transport_accept(lfd, false);
		CU_ASSERT(a >= 0);
		if (a >= 0)
			close(a);
		close(c);
	} else {
		CU_ASSERT(st.code == ST_DEADLINE_EXCEEDED || st.code == ST_UNAVAILABLE);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, name));
	}
	close(lfd);
}

/* Install a filter making socket(AF_VSOCK, ...) fail with EAFNOSUPPORT (test use only). */
static int
deny_vsock(void)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const unsigned arg0 = offsetof(struct seccomp_data, args[0]);
#else
	const unsigned arg0 = offsetof(struct seccomp_data, args[0]) + 4;
#endif
	struct sock_filter insns[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 3),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_VSOCK, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = ARRAY_SIZE(insns), .filter = insns};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void
test_vsock_unsupported(void)
{
	struct endpoint ep;
	struct status st;
	int status, ok;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		if (deny_vsock() < 0)
			_exit(77);
		ok = endpoint_parse("vsock:3:1024", &ep, &st) == 0;
		ok = ok && transport_connect(&ep, 1000, &st) == -1 && st.code == ST_UNAVAILABLE &&
		     strcmp(st.msg, "connect vsock:3:1024: vsock not supported on this host") == 0;
		ok = ok && transport_listen_vsock(1024, 16, &st) == -1 &&
		     st.code == ST_UNAVAILABLE &&
		     strstr(st.msg, "vsock not supported on this host") != NULL;
		if (!ok)
			fprintf(stderr, "\n  child: %s\n", st.msg);
		_exit(ok ? 0 : 1);
	}
	CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	CU_ASSERT_TRUE(WIFEXITED(status));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		/* No seccomp here: check the message path in this process if vsock is absent. */
		int probe = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (probe >= 0)
			close(probe);
		else
			check_vsock_unsupported();
		return;
	}
	CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
}

/* Runs last: every descriptor the cases (and the code under test) opened was closed. */
static void
test_no_fd_leak(void)
{
	CU_ASSERT_EQUAL(testlib_fd_count(false), fd_baseline);
}

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"endpoint_parse accepts the three forms", test_endpoint_parse_good},
	    {"endpoint_parse rejects bad forms", test_endpoint_parse_bad},
	    {"hybrid_parse_connect", test_hybrid_parse_connect},
	    {"handshake OK", test_handshake_ok},
	    {"handshake leaves data after the newline", test_handshake_leaves_data},
	    {"handshake keeps a non-blocking fd non-blocking", test_handshake_nonblocking_fd_stays},
	    {"handshake rejects garbage", test_handshake_garbage},
	    {"handshake line limit", test_handshake_line_limit},
	    {"handshake EOF and EPIPE", test_handshake_eof},
	    {"handshake deadline", test_handshake_deadline},
	    {"accept_line", test_accept_line},
	    {"accept_line deadline", test_accept_line_deadline},
	    {"listen_unix modes and parent dir", test_listen_unix_modes},
	    {"listen_unix stale and live sockets", test_listen_unix_stale_and_live},
	    {"listen_unix refuses non-sockets and bad paths", test_listen_unix_refuses},
	    {"connect, accept and peer credentials", test_connect_accept_cred},
	    {"connect to missing and refused sockets", test_connect_missing_and_refused},
	    {"connect deadline with a full backlog", test_connect_deadline_backlog_full},
	    {"uds connect end to end", test_connect_uds},
	    {"vsock listen and connect", test_vsock},
	    {"vsock not supported", test_vsock_unsupported},
	    {"no descriptor leaked", test_no_fd_leak},
	    {NULL, NULL},
	};
	int ret;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_transport.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	/* A deadline that is not honoured must fail the run, not hang it. */
	alarm(120);
	fd_baseline = testlib_fd_count(false);
	ret = unit_main("transport", cases);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
