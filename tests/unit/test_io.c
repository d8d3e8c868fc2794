/*
 * test_io.c: the stdio data plane (shim/io-prepare.c, shim/io-bridge.c) end to end.
 *
 * Host side: real FIFOs and files in a private mkdtemp directory, read and written by this
 * test (threads where a real runtime would be concurrent). Guest side: a fake agent played by
 * the test itself, a real Unix-socket listener speaking the stream framing of docs/PROTOCOL.md
 * section 3 (hello frame, length-prefixed data, zero-length EOF). It is a fake because the real
 * vmshim-agent is being written at the same time; the framing is the contract both follow.
 * The libevent loop runs on this test's main thread (as the shim's loop thread would), driven
 * with EVLOOP_ONCE and a 5 ms tick so conditions set by other threads are seen; no sleeps.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "frame.h"
#include "io.h"
#include "log.h"
#include "status.h"
#include "testlib.h"
#include "transport.h"
#include "util.h"
#include "unit.h"

#define WAIT_MS 10000 /* upper bound for anything that must happen; never reached when OK */

/* ---- fixture ---- */

static char tmpdir[64];
static char sock_path[256], in_path[256], out_path[256], err_path[256], file_path[256];
static char log_path[256];
static int listen_fd = -1;
static struct endpoint ep;
static struct event_base *base;
static struct event *tick;

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Fresh FIFOs for every test; the listener and the loop live for the whole program. */
static void
fifos_reset(void)
{
	unlink(in_path);
	unlink(out_path);
	unlink(err_path);
	unlink(file_path);
	CU_ASSERT_FATAL(mkfifo(in_path, 0600) == 0);
	CU_ASSERT_FATAL(mkfifo(out_path, 0600) == 0);
	CU_ASSERT_FATAL(mkfifo(err_path, 0600) == 0);
}

static void
setup(void)
{
	struct status st;
	char epstr[300];
	struct timeval tv = {0, 5000};

	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_io.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		fatal("mkdtemp");
	snprintf(sock_path, sizeof sock_path, "%s/agent.sock", tmpdir);
	snprintf(in_path, sizeof in_path, "%s/in", tmpdir);
	snprintf(out_path, sizeof out_path, "%s/out", tmpdir);
	snprintf(err_path, sizeof err_path, "%s/err", tmpdir);
	snprintf(file_path, sizeof file_path, "%s/out.log", tmpdir);
	snprintf(log_path, sizeof log_path, "%s/shim.log", tmpdir);
	/* The failure cases log warnings on purpose: keep them in a file the tests read back. */
	if (log_open(log_path, &st) == -1)
		fatalx("log: %s", st.msg);
	log_set_level(LOG_WARN);
	listen_fd = transport_listen_unix(sock_path, 0600, 64, &st);
	if (listen_fd == -1)
		fatalx("listen: %s", st.msg);
	snprintf(epstr, sizeof epstr, "unix:%s", sock_path);
	if (endpoint_parse(epstr, &ep, &st) == -1)
		fatalx("endpoint: %s", st.msg);
	base = event_base_new();
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
}

static void
teardown(void)
{
	event_free(tick);
	event_base_free(base);
	close(listen_fd);
	unlink(sock_path);
	unlink(in_path);
	unlink(out_path);
	unlink(err_path);
	unlink(file_path);
	log_close();
	unlink(log_path);
	rmdir(tmpdir);
}

/* True when the shim's log holds a line with both strings (a warning we expect). */
static bool
log_has(const char *a, const char *b)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen(log_path, "re");

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = strstr(line, a) != NULL && strstr(line, b) != NULL;
	fclose(f);
	return found;
}

/* Run the loop until *flag (set by a callback or another thread) or the bound. */
static bool
run_until(atomic_bool *flag)
{
	int64_t deadline = time_mono_ms() + WAIT_MS;

	while (!atomic_load(flag) && time_mono_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	return atomic_load(flag);
}

/* Run the loop, reading whatever the FIFO rd holds, until *flag or the bound. */
static bool
run_reading_until(int rd, atomic_bool *flag)
{
	int64_t deadline = time_mono_ms() + WAIT_MS;
	char buf[4096];

	while (!atomic_load(flag) && time_mono_ms() < deadline) {
		while (read(rd, buf, sizeof buf) > 0)
			;
		event_base_loop(base, EVLOOP_NONBLOCK);
		poll(NULL, 0, 1);
	}
	return atomic_load(flag);
}

/* Run the loop for ms milliseconds (only for "nothing happens" checks). */
static void
run_for(int ms)
{
	int64_t deadline = time_mono_ms() + ms;

	while (time_mono_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
}

/* ---- the fake agent ---- */

/*
 * Accept the shim's stream connections and read their hello frames; fds[] is indexed
 * 0 stdin, 1 stdout, 2 stderr. Output streams must carry our EOF frame right after the hello.
 */
static int
guest_accept(int fds[3], const char *exec_id)
{
	static const char *names[3] = {"stdin", "stdout", "stderr"};
	char buf[STREAM_HELLO_MAX + 1];
	json_t *j;
	long n;
	int i, k, fd, count = 0;

	fds[0] = fds[1] = fds[2] = -1;
	for (;;) {
		/*
		 * io_prepare() connected synchronously before returning, so every connection it
		 * made is already queued on the listener: polling with no wait finds them all.
		 */
		if (fd_wait(listen_fd, POLLIN, time_mono_ms()) <= 0)
			break;
		fd = transport_accept(listen_fd, false);
		CU_ASSERT_FATAL(fd >= 0);
		n = stream_read_frame(fd, buf, STREAM_HELLO_MAX, time_mono_ms() + 2000);
		CU_ASSERT_FATAL(n > 0);
		buf[n] = '\0';
		j = json_loads(buf, 0, NULL);
		CU_ASSERT_FATAL(j != NULL);
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "id")), "c1");
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "exec_id")), exec_id);
		k = -1;
		for (i = 0; i < 3; i++)
			if (strcmp(json_string_value(json_object_get(j, "stream")), names[i]) == 0)
				k = i;
		CU_ASSERT_EQUAL(json_object_size(j), 3);
		json_decref(j);
		CU_ASSERT_FATAL(k >= 0 && fds[k] == -1);
		if (k > 0) /* our EOF on output streams, right after the hello */
			CU_ASSERT_EQUAL(stream_read_frame(fd, buf, 16, time_mono_ms() + 2000), 0);
		fds[k] = fd;
		count++;
	}
	return count;
}

static void
close_fds(int fds[3])
{
	for (int i = 0; i < 3; i++)
		if (fds[i] != -1)
			close(fds[i]);
	fds[0] = fds[1] = fds[2] = -1;
}

static int
send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
send_frame(int fd, const void *data, uint32_t len)
{
	uint8_t h[STREAM_LEN_SIZE];

	stream_len_pack(len, h);
	CU_ASSERT_EQUAL(send_all(fd, h, sizeof h), 0);
	if (len > 0)
		CU_ASSERT_EQUAL(send_all(fd, data, len), 0);
}

/* True when the shim closed the connection: read() gives 0 (or a reset) within the bound. */
static bool
guest_sees_close(int fd)
{
	char c;
	ssize_t n;

	if (fd_wait(fd, POLLIN, time_mono_ms() + WAIT_MS) <= 0)
		return false;
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---- data: a position-keyed pattern, so any loss, duplicate or reorder is caught ---- */

static inline uint8_t
pat(uint64_t i)
{
	return (uint8_t)((i * 0x9E3779B97F4A7C15ull) >> 56);
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The wire image of total pattern bytes in frames of 1..max_frame bytes, then EOF. */
static uint8_t *
wire_build(size_t total, uint32_t max_frame, uint64_t seed, size_t *wire_len)
{
	size_t cap = total + (total + 1) * STREAM_LEN_SIZE + STREAM_LEN_SIZE, w = 0, i = 0;
	uint8_t *b = xmalloc(cap);
	uint32_t f;

	while (i < total) {
		f = (uint32_t)(rnd(&seed) % max_frame) + 1;
		if (f > total - i)
			f = (uint32_t)(total - i);
		stream_len_pack(f, b + w);
		w += STREAM_LEN_SIZE;
		for (uint32_t k = 0; k < f; k++)
			b[w++] = pat(i++);
	}
	stream_len_pack(0, b + w);
	w += STREAM_LEN_SIZE;
	*wire_len = w;
	return b;
}

/* The guest sending (the rest of) a wire image on a blocking socket. */
struct sender {
	int fd;
	const uint8_t *wire;
	size_t off, len;
	atomic_bool done;
	int err;
	pthread_t th;
};

static void *
sender_main(void *arg)
{
	struct sender *s = arg;

	s->err = send_all(s->fd, s->wire + s->off, s->len - s->off);
	atomic_store(&s->done, true);
	return NULL;
}

/* The runtime reading a host output FIFO to EOF, checking every byte against the pattern. */
struct reader {
	int fd;
	pthread_mutex_t mu; /* guards count against the fire-order check */
	uint64_t count;
	bool mismatch;
	atomic_bool done;
	pthread_t th;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t buf[65536];
	ssize_t n;

	for (;;) {
		fd_wait(r->fd, POLLIN, time_mono_ms() + 50);
		pthread_mutex_lock(&r->mu);
		n = read(r->fd, buf, sizeof buf);
		if (n > 0) {
			for (ssize_t k = 0; k < n; k++)
				if (buf[k] != pat(r->count + (uint64_t)k))
					r->mismatch = true;
			r->count += (uint64_t)n;
		}
		pthread_mutex_unlock(&r->mu);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
	atomic_store(&r->done, true);
	return NULL;
}

static void
reader_start(struct reader *r, const char *path)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->mu, NULL);
	r->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	CU_ASSERT_FATAL(r->fd >= 0);
}

static void
reader_run(struct reader *r)
{
	CU_ASSERT_FATAL(pthread_create(&r->th, NULL, reader_main, r) == 0);
}

static void
reader_join(struct reader *r)
{
	pthread_join(r->th, NULL);
	close(r->fd);
	pthread_mutex_destroy(&r->mu);
}

/* on_output_done: counts calls and, with a reader, checks every byte was already written. */
struct done_ctx {
	atomic_bool fired;
	int calls;
	struct reader *reader;
	uint64_t total;
	bool order_ok;
	struct io_streams **free_me; /* io_free() from inside the callback */
};

static void
on_done(void *arg)
{
	struct done_ctx *d = arg;
	int queued = 0;

	d->calls++;
	if (d->reader != NULL) {
		/* Bytes the reader has plus bytes still in the FIFO = all bytes written so far. */
		pthread_mutex_lock(&d->reader->mu);
		CU_ASSERT(ioctl(d->reader->fd, FIONREAD, &queued) == 0);
		d->order_ok = d->reader->count + (uint64_t)queued == d->total;
		pthread_mutex_unlock(&d->reader->mu);
	}
	if (d->free_me != NULL) {
		io_free(*d->free_me);
		*d->free_me = NULL;
	}
	atomic_store(&d->fired, true);
}

static struct io_prepared *
prepare(bool in, bool out, bool err, bool terminal, struct status *st)
{
	struct io_spec spec = {
	    .id = "c1",
	    .exec_id = "e1",
	    .terminal = terminal,
	    .stdin_path = in ? in_path : "",
	    .stdout_path = out ? out_path : NULL,
	    .stderr_path = err ? err_path : "",
	};

	return io_prepare(&spec, &ep, 2000, st);
}

/* ---- io_prepare ---- */

static void
test_prepare_hello(void)
{
	struct io_prepared *p;
	struct status st;
	bool in, out, err;
	int fds[3], base_fds;
	struct io_spec spec = {.id = "c1", .exec_id = "", .stdin_path = NULL};

	fifos_reset();
	base_fds = testlib_fd_count(false);
	p = prepare(true, true, true, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	io_prepared_streams(p, &in, &out, &err);
	CU_ASSERT(in && out && err);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 3);
	/* stdin: the hello and nothing else (no EOF: the FIFO has not ended). */
	CU_ASSERT_EQUAL(fd_wait(fds[0], POLLIN, 0), 0);
	io_prepared_free(p);
	CU_ASSERT(guest_sees_close(fds[0]));
	close_fds(fds);
	CU_ASSERT_EQUAL(testlib_fd_count(false), base_fds);

	/* Terminal: stdout only (merged), no stderr stream although a path is given. */
	p = prepare(true, true, true, true, &st);
	CU_ASSERT_FATAL(p != NULL);
	io_prepared_streams(p, &in, &out, &err);
	CU_ASSERT(in && out && !err);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 2);
	CU_ASSERT(fds[2] == -1);
	io_prepared_free(p);
	close_fds(fds);

	/* A regular output file that does not exist yet is created, and appended to. */
	spec.stdout_path = file_path;
	p = io_prepare(&spec, &ep, 2000, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, ""), 1);
	CU_ASSERT(access(file_path, F_OK) == 0);
	io_prepared_free(p);
	close_fds(fds);

	/* Nothing at all: no stream connected. */
	spec.stdout_path = NULL;
	p = io_prepare(&spec, &ep, 2000, &st);
	CU_ASSERT_FATAL(p != NULL);
	io_prepared_streams(p, &in, &out, &err);
	CU_ASSERT(!in && !out && !err);
	CU_ASSERT_EQUAL(guest_accept(fds, ""), 0);
	io_prepared_free(p);
	CU_ASSERT_EQUAL(testlib_fd_count(false), base_fds);
}

/* One bad path: INVALID_ARGUMENT naming it, nothing connected, nothing left open. */
static void
check_bad(const char *in, const char *out, const char *err, const char *named, int code)
{
	struct io_spec spec = {
	    .id = "c1", .exec_id = "", .stdin_path = in, .stdout_path = out, .stderr_path = err};
	struct status st;
	int fds[3], before = testlib_fd_count(false);

	status_clear(&st);
	CU_ASSERT(io_prepare(&spec, &ep, 2000, &st) == NULL);
	CU_ASSERT_EQUAL(st.code, code);
	CU_ASSERT(strstr(st.msg, named) != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, ""), 0);
	CU_ASSERT_EQUAL(testlib_fd_count(false), before);
}

static void
test_prepare_bad_paths(void)
{
	char missing[300], regular[300];
	struct io_spec spec = {.id = "c1", .exec_id = "", .stdout_path = NULL};
	struct endpoint nobody;
	struct status st;
	char epstr[300];
	int before, fd;

	fifos_reset();
	snprintf(missing, sizeof missing, "%s/missing", tmpdir);
	snprintf(regular, sizeof regular, "%s/regular", tmpdir);
	fd = open(regular, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	check_bad(missing, out_path, err_path, missing, ST_INVALID_ARGUMENT);
	check_bad(regular, out_path, err_path, regular, ST_INVALID_ARGUMENT);
	check_bad(in_path, tmpdir, err_path, tmpdir, ST_INVALID_ARGUMENT);
	check_bad(in_path, out_path, "/dev/null", "/dev/null", ST_INVALID_ARGUMENT);
	check_bad("", "/dev/null", "", "/dev/null", ST_INVALID_ARGUMENT);
	unlink(regular);

	/* Host side fine, guest unreachable: UNAVAILABLE and still nothing left open. */
	snprintf(epstr, sizeof epstr, "unix:%s/nobody.sock", tmpdir);
	CU_ASSERT_FATAL(endpoint_parse(epstr, &nobody, &st) == 0);
	spec.stdin_path = in_path;
	spec.stdout_path = out_path;
	spec.stderr_path = err_path;
	before = testlib_fd_count(false);
	CU_ASSERT(io_prepare(&spec, &nobody, 500, &st) == NULL);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_EQUAL(testlib_fd_count(false), before);
}

/* ---- output ---- */

/* A guest protocol error fails the stream, delivers what came before, and ends the output. */
static void
test_oversized_frame(void)
{
	struct done_ctx d = {0};
	struct reader r;
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	struct rusage ru0, ru1;
	uint8_t good[1000], junk[100], hdr[STREAM_LEN_SIZE];
	int fds[3], before;

	fifos_reset();
	before = testlib_fd_count(false);
	getrusage(RUSAGE_SELF, &ru0);
	p = prepare(false, true, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	reader_start(&r, out_path);
	reader_run(&r);
	d.reader = &r;
	d.total = sizeof good;
	s = io_start(base, p, on_done, &d);

	for (size_t i = 0; i < sizeof good; i++)
		good[i] = pat(i);
	memset(junk, 'x', sizeof junk);
	send_frame(fds[1], good, sizeof good);
	stream_len_pack(STREAM_FRAME_MAX + 1, hdr); /* an oversized header ... */
	CU_ASSERT_EQUAL(send_all(fds[1], hdr, sizeof hdr), 0);
	CU_ASSERT_EQUAL(send_all(fds[1], junk, sizeof junk), 0); /* ... and a little payload */

	CU_ASSERT(run_until(&d.fired));
	CU_ASSERT_EQUAL(d.calls, 1);
	CU_ASSERT(d.order_ok);
	CU_ASSERT(io_output_done(s));
	CU_ASSERT(guest_sees_close(fds[1])); /* the shim closed the failed stream */
	CU_ASSERT(run_until(&r.done));	     /* and the host FIFO: the reader saw EOF */
	CU_ASSERT_EQUAL(r.count, sizeof good);
	CU_ASSERT(!r.mismatch);
	CU_ASSERT_EQUAL(io_buffered_bytes(), 0);
	CU_ASSERT(log_has("stdout stream failed", "over 10 MiB"));
	getrusage(RUSAGE_SELF, &ru1);
	CU_ASSERT(ru1.ru_maxrss - ru0.ru_maxrss < 8 * 1024); /* KiB: 10 MiB never allocated */
	io_free(s);
	reader_join(&r);
	close_fds(fds);
	CU_ASSERT_EQUAL(testlib_fd_count(false), before);
}

/* 64 MiB in frames of varying size: every byte, in order, before on_output_done. */
static void
test_stdout_64mib(void)
{
	const size_t total = 64u << 20;
	struct done_ctx d = {0};
	struct sender snd = {0};
	struct reader r;
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	size_t wlen;
	uint8_t *wire;
	int fds[3], before;

	fifos_reset();
	before = testlib_fd_count(false);
	wire = wire_build(total, STREAM_WRITE_MAX, 0x1234567, &wlen);
	p = prepare(false, true, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	reader_start(&r, out_path);
	reader_run(&r);
	d.reader = &r;
	d.total = total;
	s = io_start(base, p, on_done, &d);
	snd.fd = fds[1];
	snd.wire = wire;
	snd.len = wlen;
	CU_ASSERT_FATAL(pthread_create(&snd.th, NULL, sender_main, &snd) == 0);

	CU_ASSERT(run_until(&d.fired));
	pthread_join(snd.th, NULL);
	CU_ASSERT_EQUAL(snd.err, 0);
	CU_ASSERT_EQUAL(d.calls, 1);
	CU_ASSERT(d.order_ok); /* fired only once the last byte was in the FIFO */
	CU_ASSERT(guest_sees_close(fds[1]));
	CU_ASSERT(run_until(&r.done));
	CU_ASSERT_EQUAL(r.count, total);
	CU_ASSERT(!r.mismatch);
	CU_ASSERT_EQUAL(io_buffered_bytes(), 0);
	run_for(20);
	CU_ASSERT_EQUAL(d.calls, 1);
	io_free(s);
	reader_join(&r);
	close_fds(fds);
	free(wire);
	CU_ASSERT_EQUAL(testlib_fd_count(false), before);
}

/*
 * A host reader that does not read: the shim holds at most its bound and the guest's sender
 * is left blocked on a full socket; once the reader reads, everything arrives. The copy path
 * (copy true) fills its buffer to the bound and stops; the splice path buffers nothing at
 * all (the payload stays in the kernel until the FIFO has room).
 */
static void
backpressure_run(bool copy)
{
	const size_t total = 16u << 20;
	struct done_ctx d = {0};
	struct sender snd = {0};
	struct reader r;
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	size_t wlen, off = 0, maxbuf = 0, prev = (size_t)-1;
	ssize_t n;
	uint8_t *wire;
	int fds[3], stable = 0, rounds;

	if (copy)
		setenv("VMSHIM_IO_COPY", "1", 1);
	fifos_reset();
	wire = wire_build(total, STREAM_WRITE_MAX, 99, &wlen);
	p = prepare(false, true, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	reader_start(&r, out_path); /* opened, not reading yet */
	d.reader = &r;
	d.total = total;
	s = io_start(base, p, on_done, &d);
	unsetenv("VMSHIM_IO_COPY");

	/* Push until the guest socket is full and the shim makes no more progress. */
	for (rounds = 0; rounds < 200000 && stable < 5; rounds++) {
		n = send(fds[1], wire + off, wlen - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (io_buffered_bytes() > maxbuf)
			maxbuf = io_buffered_bytes();
		stable = n <= 0 && io_buffered_bytes() == prev ? stable + 1 : 0;
		prev = io_buffered_bytes();
	}
	CU_ASSERT(stable >= 5);
	CU_ASSERT(off < wlen / 2);			 /* the sender is held back ... */
	CU_ASSERT_EQUAL(fd_wait(fds[1], POLLOUT, 0), 0); /* ... on a full socket */
	CU_ASSERT(maxbuf <= IO_STREAM_BUFFER_MAX);
	CU_ASSERT(maxbuf < 4u << 20);
	if (copy) {
		CU_ASSERT(maxbuf >= IO_STREAM_BUFFER_MAX - IO_READ_CHUNK); /* full, then stopped */
	} else {
		CU_ASSERT_EQUAL(maxbuf, 0); /* spliced: never through our memory */
	}
	CU_ASSERT_FALSE(atomic_load(&d.fired));

	reader_run(&r);
	snd.fd = fds[1];
	snd.wire = wire;
	snd.off = off;
	snd.len = wlen;
	CU_ASSERT_FATAL(pthread_create(&snd.th, NULL, sender_main, &snd) == 0);
	CU_ASSERT(run_until(&d.fired));
	pthread_join(snd.th, NULL);
	CU_ASSERT(d.order_ok);
	CU_ASSERT(run_until(&r.done));
	CU_ASSERT_EQUAL(r.count, total);
	CU_ASSERT(!r.mismatch);
	io_free(s);
	reader_join(&r);
	close_fds(fds);
	free(wire);
}

static void
test_backpressure(void)
{
	backpressure_run(true);
}

static void
test_backpressure_splice(void)
{
	backpressure_run(false);
}

/* A host write error: logged, the rest discarded, the guest still read to its EOF. */
static void
test_host_write_error(void)
{
	const size_t total = 4u << 20, limit = 100000;
	struct io_spec spec = {.id = "c1", .exec_id = "", .stdout_path = file_path};
	struct done_ctx d = {0};
	struct sender snd = {0};
	struct io_streams *s;
	struct io_prepared *p;
	struct rlimit old, lim;
	struct status st;
	struct stat sb;
	size_t wlen;
	uint8_t *wire;
	int fds[3];

	fifos_reset();
	wire = wire_build(total, 300000, 7, &wlen);
	p = io_prepare(&spec, &ep, 2000, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, ""), 1);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = limit; /* writes past it fail with EFBIG */
	CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	s = io_start(base, p, on_done, &d);
	snd.fd = fds[1];
	snd.wire = wire;
	snd.len = wlen;
	CU_ASSERT_FATAL(pthread_create(&snd.th, NULL, sender_main, &snd) == 0);
	CU_ASSERT(run_until(&d.fired));
	pthread_join(snd.th, NULL);
	setrlimit(RLIMIT_FSIZE, &old);
	CU_ASSERT_EQUAL(snd.err, 0); /* the guest could send everything, EOF included */
	CU_ASSERT(atomic_load(&snd.done));
	CU_ASSERT(guest_sees_close(fds[1]));
	CU_ASSERT_EQUAL(d.calls, 1);
	CU_ASSERT(stat(file_path, &sb) == 0 && (size_t)sb.st_size == limit);
	CU_ASSERT_EQUAL(io_buffered_bytes(), 0);
	io_free(s);
	close_fds(fds);
	free(wire);
}

/* ---- stdin ---- */

/* The fake agent's stdin side: frames until EOF, then its own EOF, then the shim's close. */
struct gstdin {
	int fd;
	bool send_eof;
	uint64_t count;
	bool mismatch, frame_too_big, got_eof, closed;
	atomic_bool done;
	pthread_t th;
};

static void *
gstdin_main(void *arg)
{
	struct gstdin *g = arg;
	uint8_t *buf = xmalloc(STREAM_FRAME_MAX);
	long n;

	for (;;) {
		n = stream_read_frame(g->fd, buf, STREAM_FRAME_MAX, time_mono_ms() + WAIT_MS);
		if (n < 0)
			break;
		if (n == 0) {
			g->got_eof = true;
			break;
		}
		if (n > (long)STREAM_WRITE_MAX)
			g->frame_too_big = true;
		for (long k = 0; k < n; k++)
			if (buf[k] != pat(g->count + (uint64_t)k))
				g->mismatch = true;
		g->count += (uint64_t)n;
	}
	free(buf);
	if (g->got_eof && g->send_eof)
		send_frame(g->fd, NULL, 0);
	g->closed = guest_sees_close(g->fd);
	atomic_store(&g->done, true);
	return NULL;
}

/* The runtime writing n pattern bytes into the stdin FIFO, then closing it. */
struct writer {
	int fd;
	size_t total;
	pthread_t th;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[50000];
	size_t done = 0, n;

	while (done < w->total) {
		n = w->total - done < sizeof buf ? w->total - done : sizeof buf;
		for (size_t k = 0; k < n; k++)
			buf[k] = pat(done + k);
		if (write_all(w->fd, buf, n) != 0)
			break;
		done += n;
	}
	close(w->fd);
	return NULL;
}

static void
test_stdin_frames_eof(void)
{
	struct gstdin g = {0};
	struct writer w = {0};
	struct done_ctx d = {0};
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	int fds[3], before;

	fifos_reset();
	before = testlib_fd_count(false);
	p = prepare(true, false, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	s = io_start(base, p, on_done, &d);
	g.fd = fds[0];
	g.send_eof = true;
	CU_ASSERT_FATAL(pthread_create(&g.th, NULL, gstdin_main, &g) == 0);
	w.total = 3u << 20;
	w.fd = open(in_path, O_WRONLY | O_CLOEXEC); /* the shim holds the read end already */
	CU_ASSERT_FATAL(w.fd >= 0);
	CU_ASSERT_FATAL(pthread_create(&w.th, NULL, writer_main, &w) == 0);

	CU_ASSERT(run_until(&g.done));
	pthread_join(w.th, NULL);
	pthread_join(g.th, NULL);
	CU_ASSERT_EQUAL(g.count, w.total);
	CU_ASSERT(!g.mismatch);
	CU_ASSERT(!g.frame_too_big);
	CU_ASSERT(g.got_eof);
	CU_ASSERT(g.closed);	     /* both EOFs seen: the shim closed the stream */
	CU_ASSERT_EQUAL(d.calls, 1); /* no output streams: reported from the loop */
	io_free(s);
	close_fds(fds);
	CU_ASSERT_EQUAL(testlib_fd_count(false), before);
}

/*
 * Stdin with the guest not reading: write the pattern into the FIFO, turning the loop, until
 * neither the FIFO nor the shim's buffer moves for 5 rounds. Returns the bytes written;
 * *maxbuf is the most the shim's buffer held meanwhile.
 */
static size_t
stdin_fill_until_stuck(int wfd, size_t *maxbuf)
{
	size_t written = 0, prev = (size_t)-1;
	int stable = 0, rounds;
	uint8_t chunk[4096];
	ssize_t n;

	*maxbuf = 0;
	for (rounds = 0; rounds < 200000 && stable < 5; rounds++) {
		for (size_t k = 0; k < sizeof chunk; k++)
			chunk[k] = pat(written + k);
		n = write(wfd, chunk, sizeof chunk);
		if (n > 0)
			written += (size_t)n;
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (io_buffered_bytes() > *maxbuf)
			*maxbuf = io_buffered_bytes();
		stable = n <= 0 && io_buffered_bytes() == prev ? stable + 1 : 0;
		prev = io_buffered_bytes();
	}
	CU_ASSERT(stable >= 5);
	return written;
}

/* The guest now reads: every one of the written bytes arrives in order, then EOF; s is freed. */
static void
stdin_expect_all(struct io_streams *s, int fds[3], size_t written)
{
	struct gstdin g = {0};

	g.fd = fds[0];
	g.send_eof = true;
	CU_ASSERT_FATAL(pthread_create(&g.th, NULL, gstdin_main, &g) == 0);
	CU_ASSERT(run_until(&g.done));
	pthread_join(g.th, NULL);
	CU_ASSERT_EQUAL(g.count, written);
	CU_ASSERT(!g.mismatch);
	CU_ASSERT(g.got_eof);
	CU_ASSERT(g.closed);
	CU_ASSERT_EQUAL(io_buffered_bytes(), 0);
	io_free(s);
	close_fds(fds);
}

/*
 * CloseIO with bytes read from the FIFO but not yet sent, and more still in the FIFO: all of
 * them go out (CloseIO comes after the runtime wrote its last byte), then EOF. On the copy
 * path (copy true) the bytes not yet sent sit in the shim's buffer; on the splice path a frame
 * is on the wire with the rest of its payload still in the FIFO, which CloseIO must neither
 * count as more input nor lose.
 */
static void
close_stdin_pending_run(bool copy)
{
	struct done_ctx d = {0};
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	size_t written, maxbuf;
	int fds[3], wfd, queued = 0;

	/* The copy path as it was: no splice, and no batching window a tight loop cannot see. */
	if (copy) {
		setenv("VMSHIM_IO_COPY", "1", 1);
		setenv("VMSHIM_IO_BATCH_US", "0", 1);
	}
	fifos_reset();
	p = prepare(true, false, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	s = io_start(base, p, on_done, &d);
	unsetenv("VMSHIM_IO_COPY");
	unsetenv("VMSHIM_IO_BATCH_US");
	wfd = open(in_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	CU_ASSERT_FATAL(wfd >= 0);
	/* Fill the FIFO, the shim's buffer and the guest socket (the guest is not reading). */
	written = stdin_fill_until_stuck(wfd, &maxbuf);
	if (copy) {
		CU_ASSERT(io_buffered_bytes() > 0); /* bytes read from the FIFO, not yet sent */
	}
	CU_ASSERT(maxbuf <= IO_STREAM_BUFFER_MAX);
	CU_ASSERT(ioctl(wfd, FIONREAD, &queued) == 0);
	CU_ASSERT(queued > 0); /* the shim stopped reading the FIFO at its bound */
	io_close_stdin(s);
	close(wfd);
	stdin_expect_all(s, fds, written); /* what the FIFO still held too */
}

static void
test_close_stdin_pending(void)
{
	close_stdin_pending_run(true);
}

static void
test_close_stdin_pending_splice(void)
{
	close_stdin_pending_run(false);
}

/*
 * Stdin, spliced, with the guest not reading: small writes become small copied frames until
 * the socket is full, and the last one waits in the shim's buffer. The FIFO must then be left
 * unread (the rest is spliced once the socket drains), not read into the buffer 64 KiB at a
 * time up to its bound, which turned the rest of a big transfer into copies. Then everything
 * arrives, in order, and the EOF after it.
 */
static void
test_stdin_full_socket_no_copy(void)
{
	struct done_ctx d = {0};
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	size_t written, maxbuf;
	int fds[3], wfd, queued = 0;

	/* No batching window: every small write is read and framed at once. */
	setenv("VMSHIM_IO_BATCH_US", "0", 1);
	fifos_reset();
	p = prepare(true, false, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	s = io_start(base, p, on_done, &d);
	unsetenv("VMSHIM_IO_BATCH_US");
	wfd = open(in_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	CU_ASSERT_FATAL(wfd >= 0);
	written = stdin_fill_until_stuck(wfd, &maxbuf);
	CU_ASSERT(io_buffered_bytes() > 0); /* the frame the full socket did not take */
	CU_ASSERT(maxbuf <= STREAM_LEN_SIZE + IO_READ_CHUNK);
	CU_ASSERT(ioctl(wfd, FIONREAD, &queued) == 0);
	CU_ASSERT(queued > 0); /* the rest waits in the FIFO */
	close(wfd);
	stdin_expect_all(s, fds, written);
}

/* Half-close: stdin ends and its stream closes while stdout keeps flowing afterwards. */
struct halfclose {
	struct gstdin in;
	struct sender out;
	atomic_bool stdin_closed_first;
	pthread_t th;
};

static void *
halfclose_main(void *arg)
{
	struct halfclose *h = arg;

	gstdin_main(&h->in); /* stdin: data, EOF both ways, closed by the shim */
	atomic_store(&h->stdin_closed_first, h->in.closed);
	return sender_main(&h->out); /* only then the whole of stdout */
}

static void
test_half_close(void)
{
	const size_t total = 5u << 20;
	struct halfclose h = {0};
	struct writer w = {0};
	struct done_ctx d = {0};
	struct reader r;
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	size_t wlen;
	uint8_t *wire;
	int fds[3], before;

	fifos_reset();
	before = testlib_fd_count(false);
	wire = wire_build(total, 200000, 5, &wlen);
	p = prepare(true, true, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 2);
	reader_start(&r, out_path);
	reader_run(&r);
	d.reader = &r;
	d.total = total;
	s = io_start(base, p, on_done, &d);
	h.in.fd = fds[0];
	h.in.send_eof = true;
	h.out.fd = fds[1];
	h.out.wire = wire;
	h.out.len = wlen;
	CU_ASSERT_FATAL(pthread_create(&h.th, NULL, halfclose_main, &h) == 0);
	w.total = 1000;
	w.fd = open(in_path, O_WRONLY | O_CLOEXEC);
	CU_ASSERT_FATAL(w.fd >= 0);
	CU_ASSERT_FATAL(pthread_create(&w.th, NULL, writer_main, &w) == 0);

	CU_ASSERT(run_until(&d.fired));
	pthread_join(w.th, NULL);
	pthread_join(h.th, NULL);
	CU_ASSERT(atomic_load(&h.stdin_closed_first));
	CU_ASSERT_EQUAL(h.in.count, 1000);
	CU_ASSERT_EQUAL(h.out.err, 0);
	CU_ASSERT(d.order_ok);
	CU_ASSERT(run_until(&r.done));
	CU_ASSERT_EQUAL(r.count, total);
	CU_ASSERT(!r.mismatch);
	CU_ASSERT(guest_sees_close(fds[1]));
	io_free(s);
	reader_join(&r);
	close_fds(fds);
	free(wire);
	CU_ASSERT_EQUAL(testlib_fd_count(false), before);
}

/*
 * Our EOF sent, the agent's never comes: while the process lives that is the agent still
 * writing into a process that does not read (not stuck: kept open); once the process is gone
 * (io_exit_seen) the stream is closed after the timeout.
 */
static void
test_half_closed_timeout(void)
{
	struct gstdin g = {0};
	struct done_ctx d = {0};
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	int fds[3], wfd;

	fifos_reset();
	io_set_half_closed_timeout_ms(200);
	p = prepare(true, false, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	s = io_start(base, p, on_done, &d);
	io_set_half_closed_timeout_ms(0);
	wfd = open(in_path, O_WRONLY | O_CLOEXEC);
	CU_ASSERT_FATAL(wfd >= 0);
	close(wfd); /* stdin EOF at once */
	g.fd = fds[0];
	g.send_eof = false; /* a stuck agent */
	CU_ASSERT_FATAL(pthread_create(&g.th, NULL, gstdin_main, &g) == 0);
	run_for(600); /* 3x the timeout, the process alive */
	CU_ASSERT(!atomic_load(&g.done));
	CU_ASSERT(!log_has("stdin stream half-closed", "closing"));
	io_exit_seen(s);
	CU_ASSERT(run_until(&g.done));
	pthread_join(g.th, NULL);
	CU_ASSERT(g.got_eof);
	CU_ASSERT(g.closed);
	CU_ASSERT(log_has("stdin stream half-closed", "closing"));
	io_free(s);
	close_fds(fds);
}

/* The agent's EOF on stdin first (the process closed its stdin): we end ours and close. */
static void
test_stdin_guest_eof_first(void)
{
	struct gstdin g = {0};
	struct done_ctx d = {0};
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	int fds[3], wfd;

	fifos_reset();
	p = prepare(true, false, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	s = io_start(base, p, on_done, &d);
	wfd = open(in_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC); /* the runtime keeps it open */
	CU_ASSERT_FATAL(wfd >= 0);
	send_frame(fds[0], NULL, 0);
	g.fd = fds[0];
	g.send_eof = false; /* already sent */
	CU_ASSERT_FATAL(pthread_create(&g.th, NULL, gstdin_main, &g) == 0);
	CU_ASSERT(run_until(&g.done));
	pthread_join(g.th, NULL);
	CU_ASSERT(g.got_eof);
	CU_ASSERT(g.closed);
	CU_ASSERT(write(wfd, "x", 1) == -1 && errno == EPIPE); /* FIFO closed too */
	close(wfd);
	io_free(s);
	close_fds(fds);
}

/* No writer ever opens the stdin FIFO: no EOF is invented, and teardown is clean. */
static void
test_stdin_never_opened(void)
{
	struct done_ctx d = {0};
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	int fds[3], before;

	fifos_reset();
	before = testlib_fd_count(false);
	p = prepare(true, true, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 2);
	s = io_start(base, p, on_done, &d);
	run_for(200);
	CU_ASSERT_EQUAL(fd_wait(fds[0], POLLIN, 0), 0); /* no EOF frame, no close */
	CU_ASSERT_FALSE(atomic_load(&d.fired));
	io_free(s);
	CU_ASSERT(guest_sees_close(fds[0]));
	CU_ASSERT(guest_sees_close(fds[1]));
	run_for(20);
	CU_ASSERT_EQUAL(d.calls, 0);
	close_fds(fds);
	CU_ASSERT_EQUAL(testlib_fd_count(false), before);
}

/*
 * Output that is all in the FIFO but not read yet: the streams are not done (the exit would
 * wait) until the runtime read it out; a reader that closed ends the wait at once; after the
 * exit, a runtime that keeps its reader but reads nothing holds them only until the drain
 * deadline.
 */
/*
 * A stdout-only stream that got `data` and its EOF, with a reader of ours open on the FIFO
 * (*rd) that has read nothing; half_closed_ms > 0 shortens the drain deadline.
 */
static struct io_streams *
start_written(struct done_ctx *d, int fds[3], int *rd, const char *data, int half_closed_ms)
{
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;

	memset(d, 0, sizeof *d);
	fifos_reset();
	io_set_half_closed_timeout_ms(half_closed_ms);
	p = prepare(false, true, false, false, &st);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 1);
	s = io_start(base, p, on_done, d);
	io_set_half_closed_timeout_ms(0);
	*rd = open(out_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	CU_ASSERT_FATAL(*rd >= 0);
	send_frame(fds[1], data, (uint32_t)strlen(data));
	send_frame(fds[1], NULL, 0);
	return s;
}

static void
test_done_after_fifo_read(void)
{
	struct done_ctx d;
	struct io_streams *s;
	char buf[16];
	int fds[3], rd;

	s = start_written(&d, fds, &rd, "last words", 0);
	io_exit_seen(s);
	run_for(100);
	CU_ASSERT_FALSE(atomic_load(&d.fired)); /* all in the FIFO, none of it read */
	CU_ASSERT_EQUAL(read(rd, buf, sizeof buf), 10);
	CU_ASSERT(run_until(&d.fired));
	CU_ASSERT_EQUAL(read(rd, buf, sizeof buf), 0); /* and then EOF: our end is closed */
	close(rd);
	io_free(s);
	close_fds(fds);

	/* The reader is gone (it will never read): nothing to wait for, at once. */
	s = start_written(&d, fds, &rd, "never read", 0);
	run_for(50);
	close(rd);
	io_exit_seen(s);
	CU_ASSERT(run_until(&d.fired)); /* well before the default 30 s drain deadline */
	io_free(s);
	close_fds(fds);

	/* Nobody reads: the drain deadline lets the exit go, the bytes stay in the FIFO. */
	s = start_written(&d, fds, &rd, "unread", 200);
	io_exit_seen(s);
	CU_ASSERT(run_until(&d.fired));
	CU_ASSERT_EQUAL(read(rd, buf, sizeof buf), 6);
	close(rd);
	io_free(s);
	close_fds(fds);
}

/* ---- lifetime ---- */

/* No output stream: on_output_done comes from the loop, never from inside io_start(). */
static void
test_done_deferred(void)
{
	struct done_ctx d = {0};
	struct io_spec spec = {.id = "c1", .exec_id = ""};
	struct io_streams *s;
	struct status st;

	s = io_start(base, io_prepare(&spec, &ep, 2000, &st), on_done, &d);
	CU_ASSERT_EQUAL(d.calls, 0);
	CU_ASSERT(io_output_done(s));
	CU_ASSERT(run_until(&d.fired));
	run_for(20);
	CU_ASSERT_EQUAL(d.calls, 1);
	io_free(s);

	/* Freed before the loop ran: the callback is cancelled. */
	d = (struct done_ctx){0};
	s = io_start(base, io_prepare(&spec, &ep, 2000, &st), on_done, &d);
	io_free(s);
	run_for(20);
	CU_ASSERT_EQUAL(d.calls, 0);
}

/* 200 cycles, each torn down at a different point: every descriptor closed, no callback late. */
static void
test_cycles(void)
{
	struct done_ctx d;
	struct io_streams *s;
	struct io_prepared *p;
	struct status st;
	uint64_t seed = 42;
	int fds[3], before, i, k, wfd, rd, calls;

	fifos_reset();
	before = testlib_fd_count(false);
	for (i = 0; i < 200; i++) {
		memset(&d, 0, sizeof d);
		p = prepare(true, true, true, false, &st);
		CU_ASSERT_FATAL(p != NULL);
		CU_ASSERT_EQUAL(guest_accept(fds, "e1"), 3);
		s = io_start(base, p, on_done, &d);
		switch (i % 5) {
		case 0: /* freed at once */
			break;
		case 1: /* some traffic, a random number of loop turns */
			send_frame(fds[1], "out", 3);
			wfd = open(in_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			CU_ASSERT(write(wfd, "in", 2) == 2);
			close(wfd);
			for (k = (int)(rnd(&seed) % 6); k > 0; k--)
				event_base_loop(base, EVLOOP_NONBLOCK);
			break;
		case 2: /* CloseIO, then a turn */
			io_close_stdin(s);
			io_close_stdin(s);
			event_base_loop(base, EVLOOP_NONBLOCK);
			break;
		case 3: /* output finished, freed before the callback ran */
			send_frame(fds[1], NULL, 0);
			send_frame(fds[2], NULL, 0);
			while (!io_output_done(s))
				event_base_loop(base, EVLOOP_ONCE);
			break;
		case 4: /* freed from inside on_output_done (once the runtime read the "x") */
			d.free_me = &s;
			send_frame(fds[1], "x", 1);
			send_frame(fds[1], NULL, 0);
			send_frame(fds[2], NULL, 0);
			rd = open(out_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			CU_ASSERT(rd >= 0);
			CU_ASSERT(run_reading_until(rd, &d.fired));
			close(rd);
			CU_ASSERT(s == NULL);
			break;
		}
		calls = d.calls;
		io_free(s);
		event_base_loop(base, EVLOOP_NONBLOCK);
		event_base_loop(base, EVLOOP_NONBLOCK);
		CU_ASSERT_EQUAL(d.calls, calls); /* nothing after io_free() */
		close_fds(fds);
		/* Drain what the output FIFOs got, so the next cycle starts empty. */
		fifos_reset();
	}
	CU_ASSERT_EQUAL(io_buffered_bytes(), 0);
	CU_ASSERT_EQUAL(testlib_fd_count(false), before);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"prepare: hello frames, EOF on outputs, terminal", test_prepare_hello},
	    {"prepare: bad paths named, nothing left open", test_prepare_bad_paths},
	    {"oversized guest frame fails the stream only", test_oversized_frame},
	    {"stdout: 64 MiB byte-exact, done after last byte", test_stdout_64mib},
	    {"backpressure: bounded buffer, guest blocked", test_backpressure},
	    {"backpressure, spliced: nothing buffered, guest blocked", test_backpressure_splice},
	    {"host write error: discard, keep reading guest", test_host_write_error},
	    {"stdin: frames, FIFO close is EOF", test_stdin_frames_eof},
	    {"stdin: CloseIO with data pending", test_close_stdin_pending},
	    {"stdin, spliced: CloseIO with a frame on the wire", test_close_stdin_pending_splice},
	    {"stdin, spliced: a full socket leaves the FIFO unread",
		test_stdin_full_socket_no_copy},
	    {"half-close: stdout flows after stdin closed", test_half_close},
	    {"half-closed stream closed after timeout", test_half_closed_timeout},
	    {"stdin: the agent's EOF first", test_stdin_guest_eof_first},
	    {"stdin FIFO never opened by a writer", test_stdin_never_opened},
	    {"done only once the runtime read the FIFO out", test_done_after_fifo_read},
	    {"on_output_done deferred and cancellable", test_done_deferred},
	    {"200 cycles, freed at any point, fds back", test_cycles},
	    {NULL, NULL},
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	setup();
	rc = unit_main("io", cases);
	teardown();
	return rc;
}
