/*
 * relay.c: the plain-copy yardstick of `make bench-stdio`, and its writers and reader.
 *
 * A minimal relay is the limit for any relay that copies through userspace: one read and one
 * write of up to 64 KiB per turn, blocking descriptors, nothing else. Two of them joined by a
 * Unix socket have the shape of the stdio path (process -> pipe -> agent -> socket -> shim ->
 * FIFO -> reader), so the benchmark compares vmshim against them. Modes:
 *
 *   relay connect PATH        copy stdin into a new connection to the Unix socket PATH
 *   relay listen PATH         accept one connection on PATH and copy it to stdout
 *   relay write SIZE BS       write SIZE bytes to stdout, BS bytes per write(); each write
 *                             ends with a newline (BS 100 is a writer of 100-byte lines)
 *   relay sink FILE|-         read to EOF (1 MiB reads) and print "bytes seconds", the
 *                             seconds counted from the first byte
 *
 * Single-threaded, no event loop, exits 1 with a message on any error.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RELAY_CHUNK (64 * 1024)
#define SINK_CHUNK  (1024 * 1024)

static void
relay_die(const char *what)
{
	fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
relay_write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			relay_die("write");
		buf += n;
		len -= (size_t)n;
	}
}

/* Copy in to out, 64 KiB at a time, until EOF. */
static void
relay_copy(int in, int out)
{
	static char buf[RELAY_CHUNK];
	ssize_t n;

	for (;;) {
		n = read(in, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			relay_die("read");
		if (n == 0)
			return;
		relay_write_all(out, buf, (size_t)n);
	}
}

static void
relay_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa->sun_path) {
		errno = ENAMETOOLONG;
		relay_die(path);
	}
	strcpy(sa->sun_path, path);
}

static int
relay_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	relay_addr(&sa, path);
	/* The listener may have bound its name but not be listening yet: retry for 5 s. */
	for (int i = 0;; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			relay_die("socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		if ((errno != ECONNREFUSED && errno != ENOENT) || i >= 500)
			relay_die("connect");
		close(fd);
		usleep(10000);
	}
	relay_copy(0, fd);
	close(fd);
	return 0;
}

static int
relay_listen(const char *path)
{
	struct sockaddr_un sa;
	int lfd, fd;

	relay_addr(&sa, path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1) < 0)
		relay_die("listen");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		relay_die("accept");
	close(lfd);
	relay_copy(fd, 1);
	close(fd);
	return 0;
}

static int
relay_writer(unsigned long long size, size_t bs)
{
	char *buf;
	size_t i, k;

	if (bs == 0)
		return 2;
	buf = malloc(bs);
	if (buf == NULL)
		relay_die("malloc");
	for (i = 0; i < bs; i++)
		buf[i] = (char)('a' + i % 26);
	buf[bs - 1] = '\n';
	while (size > 0) {
		k = size < bs ? (size_t)size : bs;
		relay_write_all(1, buf + (bs - k), k);
		size -= k;
	}
	free(buf);
	return 0;
}

static double
relay_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
relay_sink(const char *path)
{
	static char buf[SINK_CHUNK];
	unsigned long long got = 0;
	double t0 = 0;
	ssize_t n;
	int fd = 0;

	if (strcmp(path, "-") != 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		relay_die(path);
	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			relay_die("read");
		if (n == 0)
			break;
		if (got == 0)
			t0 = relay_now();
		got += (unsigned long long)n;
	}
	printf("%llu %.6f\n", got, got > 0 ? relay_now() - t0 : 0.0);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "connect") == 0)
		return relay_connect(argv[2]);
	if (argc == 3 && strcmp(argv[1], "listen") == 0)
		return relay_listen(argv[2]);
	if (argc == 4 && strcmp(argv[1], "write") == 0)
		return relay_writer(
		    strtoull(argv[2], NULL, 10), (size_t)strtoul(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "sink") == 0)
		return relay_sink(argv[2]);
	fprintf(stderr, "usage: relay connect|listen PATH | write SIZE BS | sink FILE|-\n");
	return 2;
}
