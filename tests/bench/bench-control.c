/*
 * bench-control.c: the load generator of `make bench-control` (tests/bench/bench-control.sh).
 *
 *   bench-control lat ENDPOINT METHOD JSON N     N calls one after another on one connection;
 *                                                prints p50/p99/mean in microseconds
 *   bench-control tput ENDPOINT ID CLIENTS SECS  CLIENTS connections, one State in flight on
 *                                                each (closed loop), for SECS; prints calls/s
 *   bench-control conns ENDPOINT N               open N connections, one Connect each (so they
 *                                                count as active), print "ready", hold them
 *                                                until stdin reaches EOF
 *
 * ENDPOINT is common/transport.h's form: unix:PATH for vmshim, uds:PATH:1024 for the agent
 * behind the hybrid socket. The same raw-frame code (common/frame.h, msg.h) talks to both, so
 * the latency ratio compares the servers, not two clients. The throughput mode drives every
 * connection from one thread with epoll (rpc_client's reader thread per connection would
 * measure the generator's context switches rather than the shim on a 2-core machine). Requests
 * are encoded once and reused with a new stream id patched into the header.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "frame.h"
#include "msg.h"
#include "transport.h"
#include "util.h"

struct bc_conn {
	int fd;
	uint32_t sid;
	uint8_t *req; /* encoded frame; stream id patched per call */
	size_t req_len;
	uint8_t in[4096];
	size_t have;
};

static int
bc_dial(const char *ep_str)
{
	struct endpoint ep;
	struct status st;
	int fd;

	if (endpoint_parse(ep_str, &ep, &st) < 0)
		fatalx("%s", st.msg);
	fd = transport_connect(&ep, 5000, &st);
	if (fd < 0)
		fatalx("connect %s: %s", ep_str, st.msg);
	return fd;
}

static void
bc_prepare(struct bc_conn *c, const char *service, const char *method, const char *json)
{
	json_t *pl = json_loads(json, 0, NULL);
	size_t len;
	char *buf;

	if (pl == NULL)
		fatalx("bad JSON %s", json);
	buf = msg_request_encode(service, method, pl, 0, &len);
	c->req = frame_encode(1, FRAME_TYPE_REQUEST, 0, buf, len, &c->req_len);
	c->sid = 1;
	free(buf);
	json_decref(pl);
}

static void
bc_send(struct bc_conn *c)
{
	uint32_t be = htonl(c->sid);

	memcpy(c->req + 4, &be, 4);
	if (write_all(c->fd, c->req, c->req_len) < 0)
		fatal("write");
	c->sid += 2;
}

/* Blocking: read one whole response frame and check its status code is 0. */
static void
bc_recv_blocking(struct bc_conn *c)
{
	uint8_t hdr[FRAME_HEADER_SIZE];
	struct frame_header h;

	if (read_full(c->fd, hdr, sizeof hdr) < 0)
		fatalx("read: connection closed");
	frame_header_unpack(hdr, &h);
	if (h.length > sizeof c->in || read_full(c->fd, c->in, h.length) < 0)
		fatalx("bad response frame");
	if (memmem(c->in, h.length, "\"code\":0", 8) == NULL)
		fatalx("call failed: %.*s", (int)h.length, (char *)c->in);
}

static int
bc_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int64_t
bc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
mode_lat(const char *ep, const char *method, const char *json, int n)
{
	struct bc_conn c = {.fd = bc_dial(ep)};
	int64_t *t = xcalloc((size_t)n, sizeof *t), sum = 0, t0;
	const char *service =
	    strncmp(ep, "uds:", 4) == 0 ? "vmshim.agent.v1.Agent" : "containerd.task.v2.Task";

	bc_prepare(&c, service, method, json);
	for (int i = 0; i < n / 10; i++) { /* warm-up */
		bc_send(&c);
		bc_recv_blocking(&c);
	}
	for (int i = 0; i < n; i++) {
		t0 = bc_now_ns();
		bc_send(&c);
		bc_recv_blocking(&c);
		t[i] = bc_now_ns() - t0;
		sum += t[i];
	}
	qsort(t, (size_t)n, sizeof *t, bc_cmp);
	printf("p50_us=%.1f p99_us=%.1f mean_us=%.1f n=%d\n", t[n / 2] / 1e3,
	    t[(size_t)n * 99 / 100] / 1e3, (double)sum / n / 1e3, n);
	free(t);
	free(c.req);
	close(c.fd);
	return 0;
}

/* Non-blocking: consume what arrived; returns the number of whole responses. */
static int
bc_recv_some(struct bc_conn *c)
{
	struct frame_header h;
	int done = 0;
	ssize_t r;

	for (;;) {
		r = read(c->fd, c->in + c->have, sizeof c->in - c->have);
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			fatalx("read: connection closed");
		c->have += (size_t)r;
		while (c->have >= FRAME_HEADER_SIZE) {
			frame_header_unpack(c->in, &h);
			if (FRAME_HEADER_SIZE + h.length > sizeof c->in)
				fatalx("response too big");
			if (c->have < FRAME_HEADER_SIZE + h.length)
				break;
			if (memmem(c->in + FRAME_HEADER_SIZE, h.length, "\"code\":0", 8) == NULL)
				fatalx("call failed");
			memmove(c->in, c->in + FRAME_HEADER_SIZE + h.length,
			    c->have - FRAME_HEADER_SIZE - h.length);
			c->have -= FRAME_HEADER_SIZE + h.length;
			done++;
		}
	}
	return done;
}

static int
mode_tput(const char *ep, const char *id, int n, int secs)
{
	struct bc_conn *cs = xcalloc((size_t)n, sizeof *cs);
	struct epoll_event evs[64];
	char json[300];
	int64_t calls = 0, t0, t_end;
	int efd = epoll_create1(EPOLL_CLOEXEC), k, done;

	snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};

		cs[i].fd = bc_dial(ep);
		bc_prepare(&cs[i], "containerd.task.v2.Task", "State", json);
		fd_set_nonblock(cs[i].fd, true);
		epoll_ctl(efd, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	t0 = bc_now_ns();
	t_end = t0 + (int64_t)secs * 1000000000;
	for (int i = 0; i < n; i++)
		bc_send(&cs[i]);
	while (bc_now_ns() < t_end) {
		k = epoll_wait(efd, evs, 64, 1000);
		for (int i = 0; i < k; i++) {
			struct bc_conn *c = evs[i].data.ptr;

			done = bc_recv_some(c);
			calls += done;
			if (done > 0)
				bc_send(c);
		}
	}
	printf("clients=%d calls=%lld secs=%.2f calls_per_s=%.0f\n", n, (long long)calls,
	    (bc_now_ns() - t0) / 1e9, calls * 1e9 / (double)(bc_now_ns() - t0));
	for (int i = 0; i < n; i++) {
		close(cs[i].fd);
		free(cs[i].req);
	}
	free(cs);
	close(efd);
	return 0;
}

static int
mode_conns(const char *ep, int n)
{
	int *fds = xcalloc((size_t)n, sizeof *fds);
	char c;

	for (int i = 0; i < n; i++) {
		struct bc_conn bc = {.fd = bc_dial(ep)};

		bc_prepare(&bc, "containerd.task.v2.Task", "Connect", "{}");
		bc_send(&bc);
		bc_recv_blocking(&bc);
		free(bc.req);
		fds[i] = bc.fd;
	}
	printf("ready %d\n", n);
	fflush(stdout);
	while (read(STDIN_FILENO, &c, 1) > 0)
		;
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "lat") == 0)
		return mode_lat(argv[2], argv[3], argv[4], atoi(argv[5]));
	if (argc == 6 && strcmp(argv[1], "tput") == 0)
		return mode_tput(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc == 4 && strcmp(argv[1], "conns") == 0)
		return mode_conns(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: bench-control lat|tput|conns ENDPOINT ...\n");
	return 2;
}
