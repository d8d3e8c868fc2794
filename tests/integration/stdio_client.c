/*
 * stdio_client.c: the runtime side of vmshim's stdio integration tests and benchmark.
 *
 * The tests play containerd: they create the FIFOs, hold their ends, drive the Task API over
 * the control socket (an rpc_client with its reader thread, so a Wait may block in one thread
 * while the main thread keeps reading FIFOs) and check every byte. Modes:
 *
 *   gen SEED SIZE [echo]        the workload: SIZE bytes of a deterministic pattern on stdout
 *                               (with "echo", stdin is first copied to stderr until its EOF)
 *   runs SOCK ID N SIZE DIR GEN [full]
 *                               N exec lifecycles in running container ID: mkfifo, Exec of
 *                               `GEN gen i SIZE`, Start, read stdout concurrently, Wait; right
 *                               after Wait returns, a non-blocking drain (until EAGAIN, the
 *                               shim still holding its end) must complete all SIZE bytes, which
 *                               must equal the pattern; then Delete. With "full" the exec also
 *                               gets stdin (a line written and closed) and stderr (that line
 *                               echoed back), and EOF on both outputs is required.
 *   closeio SOCK ID IN OUT SIZE container ID runs `cat` on FIFOs IN/OUT (created, not started):
 *                               Start, write SIZE pattern bytes to IN (holding the writer open)
 *                               while copying OUT to stdout; once all is written, stop reading
 *                               OUT, send CloseIO (output must still be outstanding), then copy
 *                               OUT to its EOF; Wait must answer exit 0.
 *   slowread FIFO CHUNK USEC PID
 *                               read CHUNK bytes every USEC microseconds to EOF, copying to
 *                               stdout; sample PID's VmRSS each time; print the peak (stderr)
 *   pump SIZE                   SIZE pattern bytes to stdout as fast as possible (benchmark)
 *   sink FILE|-                 read to EOF, print "bytes seconds" (benchmark)
 *
 * Every wait is bounded; a failure prints why and exits 1.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"
#include "rpc.h"
#include "transport.h"
#include "util.h"

#define CALL_MS	      20000
#define RUN_DEADLINE  30000
#define CHUNK	      (256 * 1024)
#define PATTERN_BLOCK (64 * 1024)

/* ---- the pattern: xorshift64* words, a byte stream that any offset slip breaks ---- */

struct gen {
	uint64_t s;
	uint8_t word[8];
	unsigned used; /* bytes of word already produced */
};

static void
gen_init(struct gen *g, uint64_t seed)
{
	g->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
	g->used = 8;
}

static uint64_t
gen_next(struct gen *g)
{
	g->s ^= g->s >> 12;
	g->s ^= g->s << 25;
	g->s ^= g->s >> 27;
	return g->s * 0x2545F4914F6CDD1Dull;
}

/* Produce the next n bytes of the stream. */
static void
gen_fill(struct gen *g, uint8_t *buf, size_t n)
{
	uint64_t w;

	while (n > 0 && g->used < 8) {
		*buf++ = g->word[g->used++];
		n--;
	}
	while (n >= 8) {
		w = gen_next(g);
		memcpy(buf, &w, 8);
		buf += 8;
		n -= 8;
	}
	if (n > 0) {
		w = gen_next(g);
		memcpy(g->word, &w, 8);
		g->used = 0;
		while (n > 0) {
			*buf++ = g->word[g->used++];
			n--;
		}
	}
}

/* Check that buf is the next n bytes of the stream. */
static bool
gen_check(struct gen *g, const uint8_t *buf, size_t n)
{
	uint8_t want[PATTERN_BLOCK];
	size_t k;

	while (n > 0) {
		k = n < sizeof want ? n : sizeof want;
		gen_fill(g, want, k);
		if (memcmp(want, buf, k) != 0)
			return false;
		buf += k;
		n -= k;
	}
	return true;
}

static uint64_t
arg_u64(const char *s, const char *what)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0) {
		fprintf(stderr, "bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static int
mode_gen(int argc, char **argv)
{
	static uint8_t buf[CHUNK];
	uint64_t left;
	struct gen g;
	size_t k;
	ssize_t n;

	if (argc < 4)
		return 2;
	if (argc > 4 && strcmp(argv[4], "echo") == 0) {
		while ((n = read(0, buf, sizeof buf)) > 0)
			if (write_all(2, buf, (size_t)n) < 0)
				return 1;
	}
	gen_init(&g, arg_u64(argv[2], "seed"));
	for (left = arg_u64(argv[3], "size"); left > 0; left -= k) {
		k = left < sizeof buf ? (size_t)left : sizeof buf;
		gen_fill(&g, buf, k);
		if (write_all(1, buf, k) < 0)
			return 1;
	}
	return 0;
}

/* ---- control calls ---- */

static struct rpc_client *
client_open(const char *sock)
{
	struct endpoint ep = {.kind = ENDPOINT_UNIX};
	struct rpc_client *c;
	struct status st;
	int fd;

	snprintf(ep.path, sizeof ep.path, "%s", sock);
	fd = transport_connect(&ep, 5000, &st);
	if (fd < 0)
		fatalx("connect %s: %s", sock, st.msg);
	c = rpc_client_new(fd, 4u << 20);
	if (rpc_client_start_reader(c, &st) < 0)
		fatalx("reader: %s", st.msg);
	return c;
}

/* One Task call that must succeed; takes the payload reference. */
static json_t *
call(struct rpc_client *c, const char *method, json_t *pl)
{
	json_t *resp = NULL;
	struct status st;

	if (pl == NULL)
		fatalx("json_pack for %s", method);
	if (rpc_client_call(c, PROTOCOL_TASK_SERVICE, method, pl, CALL_MS, &resp, &st) < 0) {
		fprintf(stderr, "%s %s: %s: %s\n", method, json_dumps(pl, JSON_COMPACT),
		    status_code_name(st.code), st.msg);
		exit(1);
	}
	json_decref(pl);
	return resp;
}

struct waiter {
	struct rpc_client *c;
	const char *id, *exec_id;
	int notify; /* write end: one byte once Wait answered */
	int exit_status;
};

static void *
waiter_run(void *arg)
{
	struct waiter *w = arg;
	json_t *resp;

	resp = call(w->c, "Wait", json_pack("{s:s, s:s}", "id", w->id, "exec_id", w->exec_id));
	w->exit_status = (int)json_integer_value(json_object_get(resp, "exit_status"));
	json_decref(resp);
	if (write(w->notify, "w", 1) != 1)
		fatal("notify");
	return NULL;
}

/* ---- runs ---- */

struct reader {
	int fd;
	uint64_t got;
	bool eof;
	struct gen g; /* expected content (stdout) */
	bool check_gen;
	char text[256]; /* stderr in "full" mode: the echoed line */
	size_t tlen;
	bool bad;
};

/* Read what is there now; false on a content mismatch. */
static void
reader_drain(struct reader *r)
{
	static uint8_t buf[CHUNK];
	ssize_t n;

	while (!r->eof) {
		n = read(r->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0)
			fatal("read");
		if (n == 0) {
			r->eof = true;
			return;
		}
		if (r->check_gen && !gen_check(&r->g, buf, (size_t)n)) {
			if (!r->bad)
				fprintf(stderr, "content differs near offset %llu\n",
				    (unsigned long long)r->got);
			r->bad = true;
		}
		if (!r->check_gen && r->tlen + (size_t)n < sizeof r->text) {
			memcpy(r->text + r->tlen, buf, (size_t)n);
			r->tlen += (size_t)n;
		}
		r->got += (uint64_t)n;
	}
}

static int
open_reader(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		fatal("open %s", path);
	return fd;
}

static void
make_fifo(const char *path)
{
	unlink(path);
	if (mkfifo(path, 0600) < 0)
		fatal("mkfifo %s", path);
}

/* One exec lifecycle; returns false (after printing why) when its output was incomplete. */
static bool
run_one(struct rpc_client *c, const char *id, unsigned i, uint64_t size, const char *dir,
    const char *genpath, bool full)
{
	static const char line[] = "a line for stdin\n";
	char exec_id[32], seed[32], sz[32], in[4096], out[4096], err[4096];
	struct reader ro = {0}, re = {0};
	struct waiter w = {0};
	struct pollfd pfd[3];
	pthread_t th;
	int notify[2], fd, r, nfds;
	bool waited = false, ok = true;
	int64_t deadline;
	json_t *args;

	snprintf(exec_id, sizeof exec_id, "run%u", i);
	snprintf(seed, sizeof seed, "%u", i);
	snprintf(sz, sizeof sz, "%llu", (unsigned long long)size);
	snprintf(in, sizeof in, "%s/%s.in", dir, exec_id);
	snprintf(out, sizeof out, "%s/%s.out", dir, exec_id);
	snprintf(err, sizeof err, "%s/%s.err", dir, exec_id);
	make_fifo(out);
	ro.fd = open_reader(out);
	ro.check_gen = true;
	gen_init(&ro.g, i);
	re.fd = -1;
	if (full) {
		make_fifo(in);
		make_fifo(err);
		re.fd = open_reader(err);
	}
	args = full ? json_pack("[s, s, s, s, s]", genpath, "gen", seed, sz, "echo")
		    : json_pack("[s, s, s, s]", genpath, "gen", seed, sz);
	json_decref(call(c, "Exec",
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:o, s:[s], s:s}}", "id", id, "exec_id",
		exec_id, "stdin", full ? in : "", "stdout", out, "stderr", full ? err : "", "spec",
		"args", args, "env", "PATH=/usr/bin:/bin", "cwd", "/")));
	if (full) {
		/* The shim holds the read end since Exec: this open does not block. */
		fd = open(in, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			fatal("open %s", in);
		if (write_all(fd, line, sizeof line - 1) < 0)
			fatal("write stdin");
		close(fd);
	}
	json_decref(call(c, "Start", json_pack("{s:s, s:s}", "id", id, "exec_id", exec_id)));

	if (pipe2(notify, O_CLOEXEC) < 0)
		fatal("pipe");
	w.c = c;
	w.id = id;
	w.exec_id = exec_id;
	w.notify = notify[1];
	if ((r = pthread_create(&th, NULL, waiter_run, &w)) != 0)
		fatalx("pthread_create: %s", strerror(r));
	deadline = time_mono_ms() + RUN_DEADLINE;
	while (!waited) {
		nfds = 0;
		pfd[nfds++] = (struct pollfd){.fd = notify[0], .events = POLLIN};
		if (!ro.eof)
			pfd[nfds++] = (struct pollfd){.fd = ro.fd, .events = POLLIN};
		if (re.fd >= 0 && !re.eof)
			pfd[nfds++] = (struct pollfd){.fd = re.fd, .events = POLLIN};
		if (time_mono_ms() > deadline)
			fatalx("%s: no Wait answer within %d ms (stdout %llu bytes)", exec_id,
			    RUN_DEADLINE, (unsigned long long)ro.got);
		if (poll(pfd, (nfds_t)nfds, 1000) < 0 && errno != EINTR)
			fatal("poll");
		if (pfd[0].revents != 0)
			waited = true;
		/* After Wait: whatever the FIFO holds now is all there may be
		 * (docs/CONTRACT.md 5.1). */
		reader_drain(&ro);
		if (re.fd >= 0)
			reader_drain(&re);
	}
	pthread_join(th, NULL);
	close(notify[0]);
	close(notify[1]);
	if (ro.got != size || ro.bad) {
		fprintf(stderr, "%s: stdout had %llu of %llu bytes when Wait returned%s\n", exec_id,
		    (unsigned long long)ro.got, (unsigned long long)size,
		    ro.bad ? " (content differs)" : "");
		ok = false;
	}
	if (w.exit_status != 0) {
		fprintf(stderr, "%s: exit status %d\n", exec_id, w.exit_status);
		ok = false;
	}
	if (full && (re.tlen != sizeof line - 1 || memcmp(re.text, line, re.tlen) != 0)) {
		fprintf(stderr, "%s: stderr had %zu bytes, not the stdin line\n", exec_id, re.tlen);
		ok = false;
	}
	json_decref(call(c, "Delete", json_pack("{s:s, s:s}", "id", id, "exec_id", exec_id)));
	if (full) {
		/* The shim closed its ends when the output ended: both readers see EOF now. */
		reader_drain(&ro);
		reader_drain(&re);
		if (!ro.eof || !re.eof) {
			fprintf(stderr, "%s: no EOF on %s after Delete\n", exec_id,
			    !ro.eof ? "stdout" : "stderr");
			ok = false;
		}
	}
	close(ro.fd);
	if (re.fd >= 0)
		close(re.fd);
	unlink(out);
	if (full) {
		unlink(in);
		unlink(err);
	}
	return ok;
}

static int
mode_runs(int argc, char **argv)
{
	struct rpc_client *c;
	unsigned n, i, bad = 0;
	uint64_t size;
	int64_t t0;
	bool full;

	if (argc < 8)
		return 2;
	n = (unsigned)arg_u64(argv[4], "count");
	size = arg_u64(argv[5], "size");
	full = argc > 8 && strcmp(argv[8], "full") == 0;
	c = client_open(argv[2]);
	t0 = time_mono_ms();
	for (i = 0; i < n; i++) {
		if (!run_one(c, argv[3], i, size, argv[6], argv[7], full) && ++bad >= 5)
			break;
	}
	rpc_client_free(c);
	printf("%u runs of %llu bytes in %lld ms, %u incomplete\n", i, (unsigned long long)size,
	    (long long)(time_mono_ms() - t0), bad);
	return bad == 0 ? 0 : 1;
}

/* ---- closeio ---- */

static int
mode_closeio(int argc, char **argv)
{
	static uint8_t buf[CHUNK], src[CHUNK];
	struct rpc_client *c;
	struct waiter w = {0};
	struct pollfd pfd[2];
	uint64_t size, written = 0, got = 0, outstanding;
	size_t srclen = 0, srcoff = 0;
	int64_t deadline;
	struct gen g;
	pthread_t th;
	int in, out, notify[2], r;
	ssize_t n;

	if (argc < 7)
		return 2;
	size = arg_u64(argv[6], "size");
	c = client_open(argv[2]);
	out = open_reader(argv[5]);
	in = open(argv[4], O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (in < 0)
		fatal("open %s", argv[4]);
	json_decref(call(c, "Start", json_pack("{s:s}", "id", argv[3])));
	gen_init(&g, 7);
	deadline = time_mono_ms() + 60000;
	/* Feed stdin and copy stdout until every input byte is in the FIFO. */
	while (written < size) {
		if (time_mono_ms() > deadline)
			fatalx("stuck after writing %llu bytes", (unsigned long long)written);
		pfd[0] = (struct pollfd){.fd = in, .events = POLLOUT};
		pfd[1] = (struct pollfd){.fd = out, .events = POLLIN};
		if (poll(pfd, 2, 1000) < 0 && errno != EINTR)
			fatal("poll");
		if (pfd[0].revents & (POLLERR | POLLHUP))
			fatalx("stdin FIFO: no reader");
		if (pfd[0].revents & POLLOUT) {
			if (srcoff == srclen) {
				srclen = size - written < sizeof src ? (size_t)(size - written)
								     : sizeof src;
				gen_fill(&g, src, srclen);
				srcoff = 0;
			}
			n = write(in, src + srcoff, srclen - srcoff);
			if (n > 0) {
				srcoff += (size_t)n;
				written += (uint64_t)n;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				fatal("write stdin");
			}
		}
		if (pfd[1].revents & POLLIN) {
			n = read(out, buf, sizeof buf);
			if (n > 0) {
				if (write_all(1, buf, (size_t)n) < 0)
					fatal("stdout");
				got += (uint64_t)n;
			}
		}
	}
	/* All input is in the FIFO (its writer still open); output is still on its way. */
	outstanding = size - got;
	json_decref(call(c, "CloseIO", json_pack("{s:s, s:b}", "id", argv[3], "stdin", 1)));
	fprintf(stderr, "CloseIO sent with %llu output bytes outstanding\n",
	    (unsigned long long)outstanding);
	if (outstanding == 0)
		fatalx("no output was outstanding at CloseIO: the test proves nothing");
	if (pipe2(notify, O_CLOEXEC) < 0)
		fatal("pipe");
	w.c = c;
	w.id = argv[3];
	w.exec_id = "";
	w.notify = notify[1];
	if ((r = pthread_create(&th, NULL, waiter_run, &w)) != 0)
		fatalx("pthread_create: %s", strerror(r));
	for (;;) {
		if (time_mono_ms() > deadline)
			fatalx("no stdout EOF (%llu bytes read)", (unsigned long long)got);
		pfd[0] = (struct pollfd){.fd = out, .events = POLLIN};
		if (poll(pfd, 1, 1000) < 0 && errno != EINTR)
			fatal("poll");
		n = read(out, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			fatal("read stdout");
		if (write_all(1, buf, (size_t)n) < 0)
			fatal("stdout");
		got += (uint64_t)n;
	}
	pthread_join(th, NULL);
	fprintf(stderr, "stdout: %llu of %llu bytes, exit status %d\n", (unsigned long long)got,
	    (unsigned long long)size, w.exit_status);
	close(in);
	close(out);
	rpc_client_free(c);
	return got == size && w.exit_status == 0 ? 0 : 1;
}

/* ---- slowread ---- */

static long
rss_kib(const char *pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%s/status", pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int
mode_slowread(int argc, char **argv)
{
	static uint8_t buf[1 << 20];
	uint64_t got = 0;
	size_t chunk;
	long usec, rss, peak = 0, first = -1;
	struct pollfd pfd;
	ssize_t n;
	int fd;

	if (argc < 6)
		return 2;
	chunk = (size_t)arg_u64(argv[3], "chunk");
	usec = (long)arg_u64(argv[4], "usec");
	if (chunk == 0 || chunk > sizeof buf)
		return 2;
	/* Blocking open: returns once the shim has the FIFO open (it holds both ends). */
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fatal("open %s", argv[2]);
	for (;;) {
		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 30000) <= 0)
			fatalx(
			    "nothing to read for 30 s after %llu bytes", (unsigned long long)got);
		n = read(fd, buf, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fatal("read");
		if (n == 0)
			break;
		if (write_all(1, buf, (size_t)n) < 0)
			fatal("stdout");
		got += (uint64_t)n;
		rss = rss_kib(argv[5]);
		if (first < 0)
			first = rss;
		if (rss > peak)
			peak = rss;
		usleep((useconds_t)usec);
	}
	fprintf(stderr, "slowread: %llu bytes, VmRSS first %ld KiB, peak %ld KiB\n",
	    (unsigned long long)got, first, peak);
	return 0;
}

/* ---- benchmark helpers ---- */

static int
mode_pump(int argc, char **argv)
{
	static uint8_t buf[CHUNK];
	uint64_t left;
	struct gen g;
	size_t k;

	if (argc < 3)
		return 2;
	gen_init(&g, 1);
	gen_fill(&g, buf, sizeof buf);
	for (left = arg_u64(argv[2], "size"); left > 0; left -= k) {
		k = left < sizeof buf ? (size_t)left : sizeof buf;
		if (write_all(1, buf, k) < 0)
			return 1;
	}
	return 0;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
mode_sink(int argc, char **argv)
{
	static uint8_t buf[CHUNK];
	uint64_t got = 0;
	double t0 = 0;
	ssize_t n;
	int fd = 0;

	if (argc < 3)
		return 2;
	if (strcmp(argv[2], "-") != 0 && (fd = open(argv[2], O_RDONLY | O_CLOEXEC)) < 0)
		fatal("open %s", argv[2]);
	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (got == 0)
			t0 = now_s();
		got += (uint64_t)n;
	}
	printf("%llu %.6f\n", (unsigned long long)got, got > 0 ? now_s() - t0 : 0.0);
	return n < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	int r = 2;

	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2) {
		if (strcmp(argv[1], "gen") == 0)
			r = mode_gen(argc, argv);
		else if (strcmp(argv[1], "runs") == 0)
			r = mode_runs(argc, argv);
		else if (strcmp(argv[1], "closeio") == 0)
			r = mode_closeio(argc, argv);
		else if (strcmp(argv[1], "slowread") == 0)
			r = mode_slowread(argc, argv);
		else if (strcmp(argv[1], "pump") == 0)
			r = mode_pump(argc, argv);
		else if (strcmp(argv[1], "sink") == 0)
			r = mode_sink(argc, argv);
	}
	if (r == 2)
		fprintf(stderr, "usage: see the comment at the top of stdio_client.c\n");
	return r;
}
