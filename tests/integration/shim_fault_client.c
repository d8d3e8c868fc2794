/*
 * shim_fault_client.c: control-socket clients for vmshim's fault tests.
 *
 *   shim_fault_client abandon SOCK ID N     send N Waits on ID and one Pids on ID (a slow call
 *                                           when the agent is frozen) on one connection, then
 *                                           close it without reading anything
 *   shim_fault_client idle SOCK N CALLS ID  open N connections, each makes one Connect call
 *                                           and then stays open and silent; meanwhile another
 *                                           connection makes CALLS State calls on ID; prints
 *                                           the latency p50/p99/max; every call must succeed
 *                                           and no idle connection may have been dropped
 *
 * Single-threaded, blocking Unix sockets; exits 0 when everything was as expected, 1
 * otherwise (printing why).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "msg.h"
#include "protocol.h"
#include "testlib.h"
#include "util.h"

/* Send one request frame on stream sid. */
static void
fc_send(int fd, uint32_t sid, const char *method, const char *json)
{
	json_t *pl = json_loads(json, 0, NULL);
	size_t len, flen;
	char *body = msg_request_encode(PROTOCOL_TASK_SERVICE, method, pl, 0, &len);
	uint8_t *frame = frame_encode(sid, FRAME_TYPE_REQUEST, 0, body, len, &flen);

	if (write_all(fd, frame, flen) < 0)
		fatal("write");
	free(frame);
	free(body);
	json_decref(pl);
}

/* Read the response on sid (5 s deadline); returns its status code, -1 on transport error. */
static int
fc_response(int fd, uint32_t sid)
{
	uint8_t hdr[FRAME_HEADER_SIZE];
	struct frame_header h;
	struct msg_response r;
	struct status st;
	uint8_t *p;
	int code;

	for (;;) {
		if (fd_wait(fd, POLLIN, time_mono_ms() + 5000) <= 0 ||
		    read_full(fd, hdr, sizeof hdr) < 0)
			return -1;
		frame_header_unpack(hdr, &h);
		if (h.length > (16u << 20))
			return -1;
		p = xmalloc(h.length + 1);
		if (read_full(fd, p, h.length) < 0) {
			free(p);
			return -1;
		}
		if (h.type == FRAME_TYPE_RESPONSE && h.stream_id == sid)
			break;
		free(p);
	}
	code = msg_response_decode(p, h.length, &r, &st) < 0 ? -1 : r.code;
	if (code >= 0)
		msg_response_clear(&r);
	free(p);
	return code;
}

static int
fc_abandon(const char *sock, const char *id, int n)
{
	int fd = testlib_connect_or_exit(sock);
	char json[300];
	uint32_t sid = 1;

	snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
	for (int i = 0; i < n; i++, sid += 2)
		fc_send(fd, sid, "Wait", json);
	fc_send(fd, sid, "Pids", json);
	/* Let the shim read them all before we vanish. */
	usleep(200 * 1000);
	close(fd);
	printf("sent %d Waits and a Pids on %s, closed without reading\n", n, id);
	return 0;
}

static int
fc_cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static long long
fc_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
fc_idle(const char *sock, int n, int calls, const char *id)
{
	int *fds = xcalloc((size_t)n, sizeof *fds), fd, dropped = 0, failed = 0;
	long long *lat = xcalloc((size_t)calls, sizeof *lat), t0;
	char json[300];
	uint32_t sid = 1;
	struct pollfd pfd;

	for (int i = 0; i < n; i++) {
		fds[i] = testlib_connect_or_exit(sock);
		fc_send(fds[i], 1, "Connect", "{\"id\":\"x\"}");
		if (fc_response(fds[i], 1) != 0) {
			printf("FAIL idle connection %d: its Connect failed\n", i);
			return 1;
		}
	}
	printf("%d idle connections open\n", n);
	snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
	fd = testlib_connect_or_exit(sock);
	for (int i = 0; i < calls; i++, sid += 2) {
		t0 = fc_now_us();
		fc_send(fd, sid, "State", json);
		if (fc_response(fd, sid) != 0)
			failed++;
		lat[i] = fc_now_us() - t0;
	}
	qsort(lat, (size_t)calls, sizeof *lat, fc_cmp_ll);
	/* Nothing was sent to the idle ones: readable now means the shim closed them. */
	for (int i = 0; i < n; i++) {
		pfd.fd = fds[i];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 0) > 0)
			dropped++;
	}
	printf("%s: beside %d idle connections, %d State calls: %d failed, latency p50 %lld us, "
	       "p99 %lld us, max %lld us; %d idle connection(s) dropped\n",
	    failed == 0 && dropped == 0 ? "PASS" : "FAIL", n, calls, failed, lat[calls / 2],
	    lat[calls * 99 / 100], lat[calls - 1], dropped);
	close(fd);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	free(lat);
	return failed == 0 && dropped == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "abandon") == 0)
		return fc_abandon(argv[2], argv[3], atoi(argv[4]));
	if (argc == 6 && strcmp(argv[1], "idle") == 0)
		return fc_idle(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
	fprintf(stderr, "usage: shim_fault_client abandon SOCK ID N | idle SOCK N CALLS ID\n");
	return 2;
}
