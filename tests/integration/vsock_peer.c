/*
 * vsock_peer.c: the guest's side of tests/integration/vm_vsock.sh, a static program put into
 * the test's initramfs and run by the guest's init instead of the agent.
 *
 * It listens on AF_VSOCK port 5000 and serves each connection in a child process. The first
 * line on a connection is a command:
 *
 *   echo          write back every byte read, until EOF; then close
 *   recv          read to EOF; answer "got <bytes> <fnv1a64 hex>\n", then send RECV_REPLY
 *                 bytes of the pattern and close: the host's direction is shut, ours flows
 *   send N        send N bytes of the pattern, shut our direction (SHUT_WR), read to EOF and
 *                 print "peer: after-shutdown <bytes> <fnv1a64 hex>" on the console
 *   dial P        connect to the host (CID 2) port P, write "hello\n", read one line L;
 *                 answer "ok L\n", or "err <errno>\n" when the connect fails
 *
 * The pattern's byte i is (i * 131 + (i >> 13)) mod 256, as in vsock_host.c. Standalone: no
 * libraries beyond libc, so it can be linked statically.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#define PEER_PORT  5000
#define RECV_REPLY (8u << 20)

static uint64_t
peer_fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static int
peer_write(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one line (without its newline) a byte at a time. 0 or -1. */
static int
peer_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (c == '\n')
			break;
		if (len + 1 >= size)
			return -1;
		buf[len++] = c;
	}
	buf[len] = '\0';
	return 0;
}

static int
peer_pattern(int fd, uint64_t total)
{
	static uint8_t buf[65536];
	uint64_t off = 0;

	while (off < total) {
		size_t n = total - off < sizeof buf ? (size_t)(total - off) : sizeof buf;
		for (size_t i = 0; i < n; i++) {
			uint64_t k = off + i;
			buf[i] = (uint8_t)(k * 131 + (k >> 13));
		}
		if (peer_write(fd, buf, n) < 0)
			return -1;
		off += n;
	}
	return 0;
}

/* Read to EOF: *count bytes with FNV-1a hash *hash. 0 or -1. */
static int
peer_drain(int fd, uint64_t *count, uint64_t *hash)
{
	static uint8_t buf[65536];

	*count = 0;
	*hash = 0xcbf29ce484222325ull;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		*count += (uint64_t)n;
		*hash = peer_fnv(*hash, buf, (size_t)n);
	}
}

static void
peer_serve(int fd)
{
	static uint8_t buf[65536];
	char line[128], out[160];
	uint64_t count, hash;
	unsigned long long arg;

	if (peer_line(fd, line, sizeof line) < 0)
		return;
	if (strcmp(line, "echo") == 0) {
		for (;;) {
			ssize_t n = read(fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || peer_write(fd, buf, (size_t)n) < 0)
				return;
		}
	} else if (strcmp(line, "recv") == 0) {
		if (peer_drain(fd, &count, &hash) < 0)
			return;
		snprintf(out, sizeof out, "got %llu %016llx\n", (unsigned long long)count,
		    (unsigned long long)hash);
		if (peer_write(fd, out, strlen(out)) == 0)
			peer_pattern(fd, RECV_REPLY);
	} else if (sscanf(line, "send %llu", &arg) == 1) {
		if (peer_pattern(fd, arg) < 0 || shutdown(fd, SHUT_WR) < 0)
			return;
		if (peer_drain(fd, &count, &hash) == 0)
			printf("peer: after-shutdown %llu %016llx\n", (unsigned long long)count,
			    (unsigned long long)hash);
		fflush(stdout);
	} else if (sscanf(line, "dial %llu", &arg) == 1) {
		struct sockaddr_vm vm = {
		    .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = (unsigned)arg};
		int c = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char reply[64];

		if (c < 0 || connect(c, (struct sockaddr *)&vm, sizeof vm) < 0) {
			snprintf(out, sizeof out, "err %d\n", errno);
		} else if (peer_write(c, "hello\n", 6) < 0 ||
			   peer_line(c, reply, sizeof reply) < 0) {
			snprintf(out, sizeof out, "err io\n");
		} else {
			snprintf(out, sizeof out, "ok %s\n", reply);
		}
		if (c >= 0)
			close(c);
		peer_write(fd, out, strlen(out));
	}
}

int
main(void)
{
	struct sockaddr_vm vm = {
	    .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = PEER_PORT};
	int l;

	signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
	l = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&vm, sizeof vm) < 0 || listen(l, 64) < 0) {
		printf("peer: listen on vsock port %d: %s\n", PEER_PORT, strerror(errno));
		return 1;
	}
	printf("peer: listening on vsock port %d\n", PEER_PORT);
	fflush(stdout);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (c < 0) {
			if (errno == EINTR)
				continue;
			printf("peer: accept: %s\n", strerror(errno));
			return 1;
		}
		pid = fork();
		if (pid == 0) {
			close(l);
			peer_serve(c);
			close(c);
			_exit(0);
		}
		close(c);
	}
}
