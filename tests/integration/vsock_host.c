/*
 * vsock_host.c: the host's side of tests/integration/vm_vsock.sh. It reaches the guest's
 * vsock_peer (port 5000) through vmshim-vsock's hybrid socket and checks what comes back.
 * Each subcommand is one scenario; it exits 0 (pass), 1 (fail, with a line saying why) or 2
 * (usage):
 *
 *   echo UDS PORT CONNS BYTES  CONNS connections at once, each sending BYTES (a per-connection
 *                              pseudo-random stream) to "echo" and reading them back, all
 *                              concurrently; the hash of what came back must equal what went
 *                              out. Prints the volume and the rate.
 *   halfclose UDS PORT BYTES   "recv": send BYTES of the pattern, shut our direction; the
 *                              guest's count and hash must match, then its 8 MiB must arrive
 *   guestshut UDS PORT BYTES   "send BYTES": read the pattern to the guest's EOF, then send
 *                              1 MiB of the pattern the other way and shut (the script checks
 *                              the guest's console for the count and hash it prints)
 *   dial UDS PORT HOSTPORT     listen on UDS_HOSTPORT, ask the guest to connect there; the
 *                              hello and the answer must cross
 *   dialrefused UDS PORT HOSTPORT  the same with nobody listening: the guest's connect fails
 *   refused UDS PORT           CONNECT to a guest port nobody listens on: closed, no OK
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RECV_REPLY (8u << 20)
#define FNV_INIT   0xcbf29ce484222325ull

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vsock_host: FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static uint64_t
fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* One line without its newline; returns -1 on EOF before a newline. */
static int
read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("read: %s", strerror(errno));
		if (n == 0)
			return -1;
		if (c == '\n')
			break;
		if (len + 1 >= size)
			fail("line too long");
		buf[len++] = c;
	}
	buf[len] = '\0';
	return 0;
}

static int
unix_connect(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof un) < 0)
		fail("connect %s: %s", path, strerror(errno));
	return fd;
}

/* Hybrid connect to guest port: the fd after "OK", or -1 when closed without one. */
static int
dial(const char *uds, unsigned port)
{
	char line[64];
	int fd = unix_connect(uds);

	snprintf(line, sizeof line, "CONNECT %u\n", port);
	write_all(fd, line, strlen(line));
	if (read_line(fd, line, sizeof line) < 0) {
		close(fd);
		return -1;
	}
	if (strncmp(line, "OK ", 3) != 0)
		fail("handshake answer \"%s\"", line);
	return fd;
}

static void
pattern(uint64_t off, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t k = off + i;
		buf[i] = (uint8_t)(k * 131 + (k >> 13));
	}
}

/* One echo connection's progress. */
struct echo {
	int fd;
	uint64_t sent, got, rng, hash_out, hash_in;
	uint8_t out[32768];
	size_t out_len, out_off;
	int shut;
};

static void
echo_fill(struct echo *e, uint64_t total)
{
	size_t n = total - e->sent < sizeof e->out ? (size_t)(total - e->sent) : sizeof e->out;

	for (size_t i = 0; i < n; i++) {
		e->rng ^= e->rng << 13;
		e->rng ^= e->rng >> 7;
		e->rng ^= e->rng << 17;
		e->out[i] = (uint8_t)e->rng;
	}
	e->out_len = n;
	e->out_off = 0;
	e->hash_out = fnv(e->hash_out, e->out, n);
}

static int
cmd_echo(const char *uds, unsigned port, unsigned conns, uint64_t bytes)
{
	struct echo *e = calloc(conns, sizeof *e);
	struct pollfd *pfd = calloc(conns, sizeof *pfd);
	static uint8_t in[65536];
	unsigned done = 0;
	double t0;

	if (e == NULL || pfd == NULL)
		fail("out of memory");
	for (unsigned i = 0; i < conns; i++) {
		if ((e[i].fd = dial(uds, port)) < 0)
			fail("connection %u: refused", i);
		write_all(e[i].fd, "echo\n", 5);
		fcntl(e[i].fd, F_SETFL, O_NONBLOCK);
		e[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
		e[i].hash_out = e[i].hash_in = FNV_INIT;
	}
	t0 = now();
	while (done < conns) {
		for (unsigned i = 0; i < conns; i++) {
			pfd[i].fd = e[i].got < bytes ? e[i].fd : -1;
			pfd[i].events = POLLIN | (e[i].sent < bytes ? POLLOUT : 0);
		}
		if (poll(pfd, conns, 120000) <= 0)
			fail("no progress for 120 s (%u of %u connections done)", done, conns);
		for (unsigned i = 0; i < conns; i++) {
			struct echo *c = &e[i];
			ssize_t n;

			if ((pfd[i].revents & POLLOUT) != 0 && c->sent < bytes) {
				if (c->out_off == c->out_len)
					echo_fill(c, bytes);
				n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
				if (n < 0 && errno != EAGAIN)
					fail("connection %u: write: %s", i, strerror(errno));
				if (n > 0) {
					c->out_off += (size_t)n;
					c->sent += (uint64_t)n;
				}
			}
			if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
			    c->got < bytes) {
				n = read(c->fd, in, sizeof in);
				if (n < 0 && errno != EAGAIN)
					fail("connection %u: read: %s", i, strerror(errno));
				if (n == 0)
					fail("connection %u: EOF after %" PRIu64 " of %" PRIu64
					     " bytes",
					    i, c->got, bytes);
				if (n > 0) {
					c->hash_in = fnv(c->hash_in, in, (size_t)n);
					c->got += (uint64_t)n;
					if (c->got > c->sent)
						fail("connection %u: more back than sent", i);
					if (c->got == bytes)
						done++;
				}
			}
		}
	}
	double t = now() - t0;
	for (unsigned i = 0; i < conns; i++) {
		char c;
		if (e[i].hash_in != e[i].hash_out)
			fail("connection %u: hash of the echo differs", i);
		/* Our EOF ends the guest's echo, whose close is our EOF. */
		fcntl(e[i].fd, F_SETFL, 0);
		shutdown(e[i].fd, SHUT_WR);
		if (read(e[i].fd, &c, 1) != 0)
			fail("connection %u: no EOF after the echo", i);
		close(e[i].fd);
	}
	printf("echo: %u connection(s) x %" PRIu64 " bytes each way, hashes equal, %.2f s, "
	       "%.2f MiB/s each way\n",
	    conns, bytes, t, (double)bytes * conns / (1 << 20) / t);
	free(e);
	free(pfd);
	return 0;
}

static int
cmd_halfclose(const char *uds, unsigned port, uint64_t bytes)
{
	static uint8_t buf[65536];
	uint64_t off = 0, count, hash = FNV_INIT, got_n, got_h;
	char line[128];
	int fd = dial(uds, port);

	if (fd < 0)
		fail("refused");
	write_all(fd, "recv\n", 5);
	while (off < bytes) {
		size_t n = bytes - off < sizeof buf ? (size_t)(bytes - off) : sizeof buf;
		pattern(off, buf, n);
		hash = fnv(hash, buf, n);
		write_all(fd, buf, n);
		off += n;
	}
	shutdown(fd, SHUT_WR);
	if (read_line(fd, line, sizeof line) < 0 ||
	    sscanf(line, "got %" SCNu64 " %" SCNx64, &got_n, &got_h) != 2)
		fail("no count from the guest");
	if (got_n != bytes || got_h != hash)
		fail("guest got %" PRIu64 " bytes hash %016" PRIx64 ", sent %" PRIu64
		     " hash %016" PRIx64,
		    got_n, got_h, bytes, hash);
	/* Our direction is shut; the guest's keeps flowing. */
	count = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		uint8_t want[sizeof buf];
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("read: %s", strerror(errno));
		if (n == 0)
			break;
		pattern(count, want, (size_t)n);
		if (memcmp(want, buf, (size_t)n) != 0)
			fail("pattern differs near byte %" PRIu64, count);
		count += (uint64_t)n;
	}
	if (count != RECV_REPLY)
		fail("after our shutdown the guest sent %" PRIu64 " bytes, want %u", count,
		    RECV_REPLY);
	close(fd);
	printf("halfclose: %" PRIu64 " bytes in, then %u bytes out after our SHUT_WR\n", bytes,
	    RECV_REPLY);
	return 0;
}

static int
cmd_guestshut(const char *uds, unsigned port, uint64_t bytes)
{
	static uint8_t buf[65536];
	uint64_t count = 0, off = 0, hash = FNV_INIT;
	const uint64_t back = 1u << 20;
	char line[64];
	int fd = dial(uds, port);

	if (fd < 0)
		fail("refused");
	snprintf(line, sizeof line, "send %" PRIu64 "\n", bytes);
	write_all(fd, line, strlen(line));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		uint8_t want[sizeof buf];
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("read: %s", strerror(errno));
		if (n == 0)
			break;
		pattern(count, want, (size_t)n);
		if (memcmp(want, buf, (size_t)n) != 0)
			fail("pattern differs near byte %" PRIu64, count);
		count += (uint64_t)n;
	}
	if (count != bytes)
		fail("got %" PRIu64 " bytes before the guest's EOF, want %" PRIu64, count, bytes);
	/* The guest's direction is shut; ours still flows. */
	while (off < back) {
		size_t n = back - off < sizeof buf ? (size_t)(back - off) : sizeof buf;
		pattern(off, buf, n);
		hash = fnv(hash, buf, n);
		write_all(fd, buf, n);
		off += n;
	}
	shutdown(fd, SHUT_WR);
	if (read(fd, buf, 1) != 0)
		fail("data after the guest's EOF");
	close(fd);
	printf("guestshut: %" PRIu64 " %016" PRIx64 "\n", back, hash);
	return 0;
}

static int
cmd_dial(const char *uds, unsigned port, unsigned hostport, int listening)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	char line[128];
	int l = -1, c, fd;

	if (listening) {
		snprintf(un.sun_path, sizeof un.sun_path, "%s_%u", uds, hostport);
		unlink(un.sun_path);
		l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (l < 0 || bind(l, (struct sockaddr *)&un, sizeof un) < 0 || listen(l, 4) < 0)
			fail("listen %s: %s", un.sun_path, strerror(errno));
	}
	if ((fd = dial(uds, port)) < 0)
		fail("refused");
	snprintf(line, sizeof line, "dial %u\n", hostport);
	write_all(fd, line, strlen(line));
	if (listening) {
		if ((c = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
			fail("accept: %s", strerror(errno));
		if (read_line(c, line, sizeof line) < 0 || strcmp(line, "hello") != 0)
			fail("the guest's connection said \"%s\"", line);
		write_all(c, "hi from the host\n", 17);
		if (read_line(fd, line, sizeof line) < 0 ||
		    strcmp(line, "ok hi from the host") != 0)
			fail("guest answered \"%s\"", line);
		close(c);
		close(l);
		unlink(un.sun_path);
		printf("dial: the guest connected to host port %u\n", hostport);
	} else {
		if (read_line(fd, line, sizeof line) < 0 || strncmp(line, "err ", 4) != 0)
			fail("guest's connect to a closed host port answered \"%s\"", line);
		printf("dialrefused: the guest's connect failed (%s)\n", line);
	}
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "echo") == 0 && argc == 6)
		return cmd_echo(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
		    strtoull(argv[5], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "halfclose") == 0)
		return cmd_halfclose(argv[2], (unsigned)atoi(argv[3]), strtoull(argv[4], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "guestshut") == 0)
		return cmd_guestshut(argv[2], (unsigned)atoi(argv[3]), strtoull(argv[4], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "dial") == 0)
		return cmd_dial(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), 1);
	if (argc == 5 && strcmp(argv[1], "dialrefused") == 0)
		return cmd_dial(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), 0);
	if (argc == 4 && strcmp(argv[1], "refused") == 0) {
		int fd = dial(argv[2], (unsigned)atoi(argv[3]));
		if (fd >= 0)
			fail("CONNECT to closed guest port %s was answered OK", argv[3]);
		printf("refused: guest port %s closed the connection (RST)\n", argv[3]);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of vsock_host.c\n");
	return 2;
}
