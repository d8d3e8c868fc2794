/*
 * test_util.c: the small helpers (common/util.c) and error statuses (common/status.c).
 *
 * Formatting, number parsing at the u32/u64 edges, RFC 3339 timestamps, descriptor flags,
 * full reads and writes through a pipe (1 MiB from a non-blocking writer to a reader
 * thread), the deadline and wake-fd variants on blocking and non-blocking pipes and
 * sockets whose peer stops reading, fd_wait's timeout and readiness, mkdir_p in a private mkdtemp
 * directory, and the text status_set / status_errno / status_wrap produce.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"
#include "unit.h"
#include "util.h"

static char tmpdir[] = "/tmp/test_util.XXXXXX";

static void
test_xasprintf(void)
{
	char *s = NULL;

	CU_ASSERT_EQUAL(xasprintf(&s, "%s-%d-%05x", "ab", -7, 255), 11);
	CU_ASSERT_STRING_EQUAL(s, "ab--7-000ff");
	free(s);
	CU_ASSERT_EQUAL(xasprintf(&s, "%s", ""), 0);
	CU_ASSERT_STRING_EQUAL(s, "");
	free(s);
}

static void
test_xalloc(void)
{
	char *p = xstrndup("abcdef", 3);
	int *z = xcalloc(4, sizeof *z);

	CU_ASSERT_STRING_EQUAL(p, "abc");
	free(p);
	CU_ASSERT(z[0] == 0 && z[3] == 0);
	z = xrealloc(z, 100 * sizeof *z);
	CU_ASSERT_EQUAL(z[3], 0);
	free(z);
	p = xstrdup("x");
	CU_ASSERT_STRING_EQUAL(p, "x");
	free(p);
}

static void
test_parse_u32(void)
{
	static const struct {
		const char *s;
		int ret;
		uint32_t v;
	} table[] = {
	    {"", -EINVAL, 0},
	    {"+1", -EINVAL, 0},
	    {"-1", -EINVAL, 0},
	    {" 1", -EINVAL, 0},
	    {"1 ", -EINVAL, 0},
	    {"1x", -EINVAL, 0},
	    {"0x10", -EINVAL, 0},
	    {"0", 0, 0},
	    {"007", 0, 7},
	    {"4294967295", 0, UINT32_MAX},
	    {"4294967296", -ERANGE, 0},
	    {"18446744073709551615", -ERANGE, 0},
	    {"18446744073709551616", -ERANGE, 0},
	};
	uint32_t v;
	size_t i;
	int r;

	for (i = 0; i < ARRAY_SIZE(table); i++) {
		v = 12345;
		r = parse_u32(table[i].s, &v);
		if (r != table[i].ret)
			fprintf(stderr, "parse_u32(\"%s\") = %d\n", table[i].s, r);
		CU_ASSERT_EQUAL(r, table[i].ret);
		CU_ASSERT_EQUAL(v, table[i].ret == 0 ? table[i].v : 12345); /* untouched on error */
	}
	CU_ASSERT_EQUAL(parse_u32(NULL, &v), -EINVAL);
}

static void
test_parse_u64(void)
{
	static const struct {
		const char *s;
		int ret;
		uint64_t v;
	} table[] = {
	    {"", -EINVAL, 0},
	    {"+1", -EINVAL, 0},
	    {"-1", -EINVAL, 0},
	    {" 1", -EINVAL, 0},
	    {"1 ", -EINVAL, 0},
	    {"1.0", -EINVAL, 0},
	    {"0", 0, 0},
	    {"42", 0, 42},
	    {"4294967295", 0, UINT32_MAX},
	    {"4294967296", 0, (uint64_t)UINT32_MAX + 1},
	    {"18446744073709551615", 0, UINT64_MAX},
	    {"18446744073709551616", -ERANGE, 0},
	    {"18446744073709551620", -ERANGE, 0},
	    {"99999999999999999999", -ERANGE, 0},
	    {"184467440737095516150", -ERANGE, 0},
	};
	uint64_t v;
	size_t i;
	int r;

	for (i = 0; i < ARRAY_SIZE(table); i++) {
		v = 12345;
		r = parse_u64(table[i].s, &v);
		if (r != table[i].ret)
			fprintf(stderr, "parse_u64(\"%s\") = %d\n", table[i].s, r);
		CU_ASSERT_EQUAL(r, table[i].ret);
		CU_ASSERT_EQUAL(v, table[i].ret == 0 ? table[i].v : 12345); /* untouched on error */
	}
	CU_ASSERT_EQUAL(parse_u64(NULL, &v), -EINVAL);
}

static void
test_time_rfc3339(void)
{
	static const struct {
		struct timespec ts;
		const char *want;
	} table[] = {
	    {{0, 5}, "1970-01-01T00:00:00.000000005Z"},
	    {{0, 0}, "1970-01-01T00:00:00.000000000Z"},
	    {{1700000000, 123456789}, "2023-11-14T22:13:20.123456789Z"},
	    {{951782400, 999999999}, "2000-02-29T00:00:00.999999999Z"},
	    {{4102444799, 100}, "2099-12-31T23:59:59.000000100Z"},
	};
	char out[TIME_RFC3339_LEN];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(table); i++) {
		memset(out, 'x', sizeof out);
		time_rfc3339(&table[i].ts, out);
		CU_ASSERT_STRING_EQUAL(out, table[i].want);
	}
}

static void
test_time_rfc3339_now(void)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
	char out[TIME_RFC3339_LEN];
	struct timespec before, after;
	char lo[TIME_RFC3339_LEN], hi[TIME_RFC3339_LEN];
	size_t i;
	int bad = 0;

	clock_gettime(CLOCK_REALTIME, &before);
	time_rfc3339_now(out);
	clock_gettime(CLOCK_REALTIME, &after);
	CU_ASSERT_EQUAL_FATAL(strlen(out), sizeof shape - 1);
	for (i = 0; i < sizeof shape - 1; i++)
		if (shape[i] == 'd' ? (out[i] < '0' || out[i] > '9') : out[i] != shape[i])
			bad++;
	CU_ASSERT_EQUAL(bad, 0);
	/* Same width throughout, so string order is time order. */
	time_rfc3339(&before, lo);
	time_rfc3339(&after, hi);
	CU_ASSERT(strcmp(lo, out) <= 0 && strcmp(out, hi) <= 0);
}

static void
test_monotonic(void)
{
	int64_t a = time_mono_ms(), b = time_mono_ms();

	CU_ASSERT(a > 0);
	CU_ASSERT(b >= a);
}

static void
test_time_after_ms(void)
{
	struct timespec now, ts;
	int64_t d;

	clock_gettime(CLOCK_MONOTONIC, &now);
	time_after_ms(CLOCK_MONOTONIC, 2999, &ts);
	CU_ASSERT(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
	/* 2.999 s later, within the time the two calls took (well under 1 s). */
	d = ((int64_t)ts.tv_sec - now.tv_sec) * 1000 + (ts.tv_nsec - now.tv_nsec) / 1000000;
	CU_ASSERT(d >= 2999 && d < 3999);
	time_after_ms(CLOCK_REALTIME, 0, &ts);
	CU_ASSERT(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
}

static void
test_path_has_dotdot(void)
{
	CU_ASSERT(path_has_dotdot(".."));
	CU_ASSERT(path_has_dotdot("/.."));
	CU_ASSERT(path_has_dotdot("/a/../b"));
	CU_ASSERT(path_has_dotdot("a/.."));
	CU_ASSERT(path_has_dotdot("/a//../"));
	CU_ASSERT(!path_has_dotdot("/"));
	CU_ASSERT(!path_has_dotdot(""));
	CU_ASSERT(!path_has_dotdot("/a/..b/c"));
	CU_ASSERT(!path_has_dotdot("/a/b../c"));
	CU_ASSERT(!path_has_dotdot("/a/./b/..."));
}

static void
test_fd_flags(void)
{
	int p[2];

	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	CU_ASSERT_FALSE(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	CU_ASSERT_EQUAL(fd_set_nonblock(p[0], true), 0);
	CU_ASSERT_TRUE(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	CU_ASSERT_EQUAL(fd_set_nonblock(p[0], false), 0);
	CU_ASSERT_FALSE(fcntl(p[0], F_GETFL) & O_NONBLOCK);

	CU_ASSERT_FALSE(fcntl(p[1], F_GETFD) & FD_CLOEXEC);
	CU_ASSERT_EQUAL(fd_set_cloexec(p[1]), 0);
	CU_ASSERT_TRUE(fcntl(p[1], F_GETFD) & FD_CLOEXEC);
	close(p[0]);
	close(p[1]);

	/* p[0] is closed now and nothing was opened since. */
	CU_ASSERT_EQUAL(fd_set_nonblock(p[0], true), -EBADF);
	CU_ASSERT_EQUAL(fd_set_cloexec(p[0]), -EBADF);
}

#define BIG (1024 * 1024)

struct reader {
	int fd;
	unsigned char *buf;
	int ret;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;

	r->ret = read_full(r->fd, r->buf, BIG);
	return NULL;
}

static void
test_write_all_read_full(void)
{
	unsigned char *out = xmalloc(BIG), *in = xcalloc(1, BIG);
	struct reader r = {.buf = in, .ret = 1};
	pthread_t th;
	int p[2];
	size_t i;

	for (i = 0; i < BIG; i++)
		out[i] = (unsigned char)(i * 131 + (i >> 12));
	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	/* Non-blocking writer: 1 MiB is far more than the pipe holds, so it must poll. */
	CU_ASSERT_EQUAL(fd_set_nonblock(p[1], true), 0);
	r.fd = p[0];
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, reader_main, &r), 0);
	CU_ASSERT_EQUAL(write_all(p[1], out, BIG), 0);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT(memcmp(in, out, BIG) == 0);

	/* EOF after 3 of 10 bytes is -EPIPE. */
	CU_ASSERT_EQUAL(write_all(p[1], "abc", 3), 0);
	close(p[1]);
	memset(in, 0, 10);
	CU_ASSERT_EQUAL(read_full(p[0], in, 10), -EPIPE);
	CU_ASSERT(memcmp(in, "abc", 3) == 0);
	CU_ASSERT_EQUAL(read_full(p[0], in, 0), 0); /* nothing asked, nothing read */
	close(p[0]);

	/* A write to a pipe with no reader is an error, not a signal death (SIGPIPE ignored). */
	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	CU_ASSERT_EQUAL(write_all(p[1], "x", 1), -EPIPE);
	close(p[1]);
	free(out);
	free(in);
}

/* Read BIG bytes with read_full_deadline (10 s) on a reader thread. */
static void *
reader_deadline_main(void *arg)
{
	struct reader *r = arg;

	r->ret = read_full_deadline(r->fd, r->buf, BIG, time_mono_ms() + 10000);
	return NULL;
}

/* A descriptor pair for the deadline tests: a socketpair or a pipe, blocking or not. */
static void
make_pair(int p[2], bool sock, bool nonblock)
{
	int r = sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) : pipe2(p, O_CLOEXEC);

	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT_EQUAL(fd_set_nonblock(p[1], nonblock), 0);
}

/*
 * write_all_deadline / write_all_wake: 1 MiB arrives intact through every kind of descriptor
 * (the blocking pipe goes through the PIPE_BUF path); a peer that never reads costs a timeout,
 * not a hang, whatever O_NONBLOCK says, with a partial count; a wake fd ends it at once.
 */
static void
test_write_all_deadline(void)
{
	unsigned char *out = xmalloc(BIG), *in = xmalloc(BIG);
	struct reader r;
	uint64_t one = 1;
	int64_t start, took;
	size_t i, written;
	pthread_t th;
	int kind, p[2], wake;

	alarm(60); /* a writer that blocks despite the deadline kills the test, not the run */
	for (i = 0; i < BIG; i++)
		out[i] = (unsigned char)(i * 151 + (i >> 11));
	for (kind = 0; kind < 4; kind++) {
		bool sock = kind & 1, nonblock = kind & 2;

		/* Round trip with a reader. */
		make_pair(p, sock, nonblock);
		memset(in, 0, BIG);
		r = (struct reader){.fd = p[0], .buf = in, .ret = 1};
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, reader_deadline_main, &r), 0);
		CU_ASSERT_EQUAL(write_all_deadline(p[1], out, BIG, time_mono_ms() + 10000), 0);
		pthread_join(th, NULL);
		CU_ASSERT_EQUAL(r.ret, 0);
		CU_ASSERT(memcmp(in, out, BIG) == 0);
		close(p[0]);
		close(p[1]);

		/* Nobody reads: -ETIMEDOUT at the deadline, part of the buffer gone. */
		make_pair(p, sock, nonblock);
		start = time_mono_ms();
		written = 0;
		CU_ASSERT_EQUAL(
		    write_all_wake(p[1], out, BIG, start + 100, -1, &written), -ETIMEDOUT);
		took = time_mono_ms() - start;
		CU_ASSERT(took >= 99);
		CU_ASSERT(took < 5000);
		CU_ASSERT(written > 0 && written < BIG);
		/* Full already: the plain variant times out too, having written nothing. */
		start = time_mono_ms();
		CU_ASSERT_EQUAL(write_all_deadline(p[1], out, BIG, start + 50), -ETIMEDOUT);
		CU_ASSERT(time_mono_ms() - start < 5000);

		/* The wake fd, once readable, ends a wait with no deadline. */
		wake = eventfd(0, EFD_CLOEXEC);
		CU_ASSERT_FATAL(wake >= 0);
		CU_ASSERT_EQUAL(write(wake, &one, sizeof one), (ssize_t)sizeof one);
		start = time_mono_ms();
		written = 1;
		CU_ASSERT_EQUAL(write_all_wake(p[1], out, BIG, -1, wake, &written), -ECANCELED);
		CU_ASSERT_EQUAL(written, 0);
		CU_ASSERT(time_mono_ms() - start < 5000);
		close(wake);

		/* The reader is gone: -EPIPE (with MSG_NOSIGNAL for sockets), no wait. */
		close(p[0]);
		CU_ASSERT_EQUAL(write_all_deadline(p[1], "x", 1, time_mono_ms() + 5000), -EPIPE);
		close(p[1]);
	}
	alarm(0);
	free(out);
	free(in);
}

/*
 * read_full_deadline: a silent writer costs a timeout even on a blocking descriptor; EOF
 * before len bytes is -EPIPE; bytes already there are read without waiting.
 */
static void
test_read_full_deadline(void)
{
	char buf[16];
	int64_t start, took;
	int kind, p[2];

	alarm(60); /* as above, for a reader */
	for (kind = 0; kind < 2; kind++) {
		make_pair(p, kind == 1, false);
		CU_ASSERT_EQUAL(fd_set_nonblock(p[0], false), 0);
		CU_ASSERT_EQUAL(write_all(p[1], "abc", 3), 0);
		start = time_mono_ms();
		CU_ASSERT_EQUAL(read_full_deadline(p[0], buf, 10, start + 100), -ETIMEDOUT);
		took = time_mono_ms() - start;
		CU_ASSERT(took >= 99);
		CU_ASSERT(took < 5000);
		CU_ASSERT(memcmp(buf, "abc", 3) == 0);

		CU_ASSERT_EQUAL(write_all(p[1], "defg", 4), 0);
		memset(buf, 0, sizeof buf);
		CU_ASSERT_EQUAL(read_full_deadline(p[0], buf, 4, time_mono_ms() + 5000), 0);
		CU_ASSERT(memcmp(buf, "defg", 4) == 0);
		CU_ASSERT_EQUAL(read_full_deadline(p[0], buf, 0, 0), 0);

		CU_ASSERT_EQUAL(write_all(p[1], "hi", 2), 0);
		close(p[1]);
		CU_ASSERT_EQUAL(read_full_deadline(p[0], buf, 10, time_mono_ms() + 5000), -EPIPE);
		CU_ASSERT(memcmp(buf, "hi", 2) == 0);
		close(p[0]);
	}
	alarm(0);
}

static void
test_fd_wait(void)
{
	int64_t start, took;
	int p[2];

	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	start = time_mono_ms();
	CU_ASSERT_EQUAL(fd_wait(p[0], POLLIN, start + 50), 0);
	took = time_mono_ms() - start;
	CU_ASSERT(took >= 49); /* waited for the deadline, not less */
	CU_ASSERT(took < 5000);
	/* A deadline already past polls once and returns at once. */
	CU_ASSERT_EQUAL(fd_wait(p[0], POLLIN, 0), 0);

	CU_ASSERT_EQUAL(fd_wait(p[1], POLLOUT, time_mono_ms() + 1000), 1);
	CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
	start = time_mono_ms();
	CU_ASSERT_EQUAL(fd_wait(p[0], POLLIN, start + 10000), 1);
	CU_ASSERT(time_mono_ms() - start < 5000);
	CU_ASSERT_EQUAL(fd_wait(p[0], POLLIN, -1), 1); /* forever, but ready now */
	close(p[0]);
	close(p[1]);
}

static void
test_mkdir_p(void)
{
	char path[PATH_MAX], file[PATH_MAX + 16];
	struct stat sb;
	int fd;

	snprintf(path, sizeof path, "%s/a/b/c", tmpdir);
	CU_ASSERT_EQUAL(mkdir_p(path, 0755), 0);
	CU_ASSERT(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));
	CU_ASSERT_EQUAL(mkdir_p(path, 0755), 0); /* existing is fine */
	snprintf(path, sizeof path, "%s/a/b/c/", tmpdir);
	CU_ASSERT_EQUAL(mkdir_p(path, 0755), 0); /* trailing slash */
	snprintf(path, sizeof path, "%s/a//d", tmpdir);
	CU_ASSERT_EQUAL(mkdir_p(path, 0755), 0); /* doubled slash */
	snprintf(path, sizeof path, "%s/a/d", tmpdir);
	CU_ASSERT(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));

	/* A file in the way is an error. */
	snprintf(file, sizeof file, "%s/a/file", tmpdir);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	close(fd);
	snprintf(path, sizeof path, "%s/a/file/x", tmpdir);
	CU_ASSERT_EQUAL(mkdir_p(path, 0755), -ENOTDIR);
	CU_ASSERT(mkdir_p("", 0755) < 0);
}

/* A FIFO with no writer, a directory, a file over the limit: refused at once, never waited on. */
static void
test_read_regular_file(void)
{
	char path[PATH_MAX], fifo[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	int fd;

	snprintf(path, sizeof path, "%s/rf", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write_all(fd, "{\"a\":1}", 7), 0);
	close(fd);
	CU_ASSERT_EQUAL(util_read_regular_file(path, 100, &text, &len), 0);
	CU_ASSERT_EQUAL(len, 7);
	CU_ASSERT_STRING_EQUAL(text, "{\"a\":1}");
	free(text);
	text = NULL;
	CU_ASSERT_EQUAL(util_read_regular_file(path, 7, &text, NULL), 0);
	free(text);
	text = NULL;
	CU_ASSERT_EQUAL(util_read_regular_file(path, 6, &text, &len), -EFBIG);
	CU_ASSERT_PTR_NULL(text);
	CU_ASSERT_EQUAL(util_read_regular_file(tmpdir, 100, &text, &len), -EINVAL);
	snprintf(fifo, sizeof fifo, "%s/ff", tmpdir);
	CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
	/* Without O_NONBLOCK this open would wait for a writer for ever. */
	CU_ASSERT_EQUAL(util_read_regular_file(fifo, 100, &text, &len), -EINVAL);
	CU_ASSERT_STRING_EQUAL(util_file_strerror(-EINVAL, S_IFREG), "not a regular file");
	fd = util_open_nonblock(fifo, O_RDONLY, S_IFIFO, NULL);
	CU_ASSERT(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof path, "%s/none", tmpdir);
	CU_ASSERT_EQUAL(util_read_regular_file(path, 100, &text, &len), -ENOENT);
	unlink(fifo);
	snprintf(path, sizeof path, "%s/rf", tmpdir);
	unlink(path);
}

static void
test_status(void)
{
	struct status st;
	char big[2 * STATUS_MSG_MAX];

	status_clear(&st);
	CU_ASSERT_EQUAL(st.code, ST_OK);
	CU_ASSERT_STRING_EQUAL(st.msg, "");

	CU_ASSERT_EQUAL(status_set(&st, ST_NOT_FOUND, "container %s", "c1"), -1);
	CU_ASSERT_EQUAL(st.code, ST_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(st.msg, "container c1");
	CU_ASSERT_EQUAL(status_wrap(&st, "delete %d", 7), -1);
	CU_ASSERT_EQUAL(st.code, ST_NOT_FOUND); /* wrapping keeps the code */
	CU_ASSERT_STRING_EQUAL(st.msg, "delete 7: container c1");

	CU_ASSERT_EQUAL(status_errno(&st, ST_UNAVAILABLE, ENOENT, "open %s", "/x"), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_STRING_EQUAL(st.msg, "open /x: No such file or directory");
	status_errno(&st, ST_INTERNAL, -EPIPE, "write"); /* negative errno too */
	CU_ASSERT_STRING_EQUAL(st.msg, "write: Broken pipe");

	/* Long messages are cut to fit, never overflow. */
	memset(big, 'y', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	status_set(&st, ST_INTERNAL, "%s", big);
	CU_ASSERT_EQUAL(strlen(st.msg), STATUS_MSG_MAX - 1);
	status_wrap(&st, "ctx");
	CU_ASSERT_EQUAL(strlen(st.msg), STATUS_MSG_MAX - 1);
	CU_ASSERT(strncmp(st.msg, "ctx: yyy", 8) == 0);
}

static void
test_status_names(void)
{
	int code;

	CU_ASSERT_STRING_EQUAL(status_code_name(ST_OK), "OK");
	CU_ASSERT_STRING_EQUAL(status_code_name(ST_INVALID_ARGUMENT), "INVALID_ARGUMENT");
	CU_ASSERT_STRING_EQUAL(status_code_name(ST_UNAUTHENTICATED), "UNAUTHENTICATED");
	CU_ASSERT_STRING_EQUAL(status_code_name(17), "UNKNOWN_CODE");
	CU_ASSERT_STRING_EQUAL(status_code_name(-1), "UNKNOWN_CODE");
	for (code = 0; code <= ST_UNAUTHENTICATED; code++)
		CU_ASSERT_EQUAL(status_code_parse(status_code_name(code)), code);
	CU_ASSERT_EQUAL(status_code_parse("NOPE"), -1);
	CU_ASSERT_EQUAL(status_code_parse("ok"), -1);
}

static void
test_cleanup(void)
{
	int fd;
	char *seen;

	{
		cleanup_close int c = open("/dev/null", O_RDONLY | O_CLOEXEC);
		cleanup_free char *p = xstrdup("freed at scope end (ASan checks)");

		fd = c;
		CU_ASSERT_TRUE_FATAL(fd >= 0);
		(void)p;
	}
	CU_ASSERT(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
	{
		cleanup_close int c = open("/dev/null", O_RDONLY | O_CLOEXEC);
		cleanup_free char *p = xstrdup("kept");

		fd = steal_fd(&c);
		seen = steal_ptr(&p);
		CU_ASSERT_EQUAL(c, -1);
		CU_ASSERT_PTR_NULL(p);
	}
	CU_ASSERT(fcntl(fd, F_GETFD) >= 0);
	CU_ASSERT_STRING_EQUAL(seen, "kept");
	close(fd);
	free(seen);
}

/* util_which: a path is itself, a name is found on PATH, then in the system dirs on request. */
static void
test_which(void)
{
	char dir[PATH_MAX], *p;
	const char *old = getenv("PATH");
	cleanup_free char *saved = old != NULL ? xstrdup(old) : NULL;
	int fd;

	snprintf(dir, sizeof dir, "%s/bin", tmpdir);
	CU_ASSERT_EQUAL(mkdir_p(dir, 0700), 0);
	snprintf(dir, sizeof dir, "%s/bin/vmshim-which-test", tmpdir);
	fd = open(dir, O_WRONLY | O_CREAT | O_CLOEXEC, 0700);
	CU_ASSERT(fd >= 0);
	close(fd);
	snprintf(dir, sizeof dir, "/nonexistent:%s/bin", tmpdir);
	setenv("PATH", dir, 1);
	p = util_which("vmshim-which-test", false);
	CU_ASSERT_PTR_NOT_NULL(p);
	if (p != NULL)
		CU_ASSERT(strstr(p, "/bin/vmshim-which-test") != NULL);
	free(p);
	/* sh is not on this PATH: only the system directories find it. */
	CU_ASSERT_PTR_NULL(util_which("sh", false));
	p = util_which("sh", true);
	CU_ASSERT_PTR_NOT_NULL(p);
	free(p);
	CU_ASSERT_PTR_NULL(util_which("/nonexistent/sh", true));
	CU_ASSERT_PTR_NULL(util_which("vmshim-no-such-program", true));
	if (saved != NULL)
		setenv("PATH", saved, 1);
	snprintf(dir, sizeof dir, "%s/bin/vmshim-which-test", tmpdir);
	unlink(dir);
	snprintf(dir, sizeof dir, "%s/bin", tmpdir);
	rmdir(dir);
}

/* Remove the private directory tree the mkdir_p case made. */
static void
cleanup_tmpdir(void)
{
	static const char *const rel[] = {"a/b/c", "a/b", "a/d", "a/file", "a", ""};
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(rel); i++) {
		snprintf(p, sizeof p, "%s/%s", tmpdir, rel[i]);
		if (rmdir(p) < 0)
			unlink(p);
	}
}

static const struct unit_case cases[] = {
    {"xasprintf", test_xasprintf},
    {"xmalloc family", test_xalloc},
    {"parse_u32 table", test_parse_u32},
    {"parse_u64 table", test_parse_u64},
    {"time_rfc3339 fixed times", test_time_rfc3339},
    {"time_rfc3339_now shape", test_time_rfc3339_now},
    {"time_mono_ms", test_monotonic},
    {"fd_set_nonblock / fd_set_cloexec", test_fd_flags},
    {"write_all / read_full, 1 MiB through a pipe", test_write_all_read_full},
    {"fd_wait timeout and ready", test_fd_wait},
    {"write_all_deadline / write_all_wake", test_write_all_deadline},
    {"read_full_deadline", test_read_full_deadline},
    {"mkdir_p", test_mkdir_p},
    {"time_after_ms", test_time_after_ms},
    {"path_has_dotdot", test_path_has_dotdot},
    {"util_read_regular_file / util_open_nonblock", test_read_regular_file},
    {"util_which / util_find_in", test_which},
    {"status_set / status_errno / status_wrap", test_status},
    {"status code names", test_status_names},
    {"cleanup attributes", test_cleanup},
    {NULL, NULL},
};

int
main(void)
{
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL)
		unit_skip("mkdtemp failed");
	r = unit_main("util", cases);
	cleanup_tmpdir();
	return r;
}
