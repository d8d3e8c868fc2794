/*
 * shim_rawclient.c: a small ttrpc client for the integration tests of vmshim.
 *
 * It speaks raw frames (so it can send what a well-behaved client never would) on a blocking
 * Unix socket, single-threaded: every mode opens its own connections, checks what comes back
 * and exits 0 when everything was as expected, 1 otherwise (printing why). Modes:
 *
 *   call SOCK METHOD JSON            one Task call; prints "CODE PAYLOAD" (code as a name);
 *                                    the answer is awaited 10 s, a Wait's 120 s (it lasts as
 *                                    long as the process, however loaded the machine)
 *   badinput SOCK MAXMSG             docs/CONTRACT.md 5.5's bad input on one connection, each case
 *                                    followed by a Connect that must still succeed
 *   cycles SOCK N                    N x (connect, Connect call, disconnect)
 *   halfheader SOCK N                N connections that send 5 header bytes and stall, then a
 *                                    fresh client's Connect must be answered; prints latency
 *   waits SOCK N ID                  park N Waits on ID on one connection, check State keeps
 *                                    flowing, Kill ID, then collect all N Wait answers
 *   subscribe SOCK N                 subscribe to events, print the first N topics
 *   noread SOCK N                    send N requests and never read the answers, then a
 *                                    fresh client's Connect must be answered; prints latency
 *   pair SOCK M1 J1 M2 J2            send M1 then M2 back to back on one connection (the shim
 *                                    dispatches them in that order), print each answer as
 *                                    it arrives: "M: CODE message"
 *   dupsid SOCK ID                   park a Wait on ID, send a State on the same stream id:
 *                                    that answers INVALID_ARGUMENT at once; then Kill ID and
 *                                    the Wait still answers OK on that id
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "msg.h"
#include "protocol.h"
#include "testlib.h"
#include "util.h"

static uint32_t next_id = 1;
static int response_ms = 10000; /* how long rc_read_response waits for the answer */

static void
rc_send_frame(int fd, uint32_t sid, uint8_t type, uint8_t flags, const void *p, size_t len)
{
	size_t n;
	uint8_t *buf = frame_encode(sid, type, flags, p, len, &n);

	if (write_all(fd, buf, n) < 0)
		fatal("write");
	free(buf);
}

static uint32_t
rc_send_request(int fd, const char *service, const char *method, const char *json, uint8_t flags)
{
	json_error_t jerr;
	json_t *pl = json_loads(json, 0, &jerr);
	size_t len;
	char *buf;
	uint32_t sid = next_id;

	if (pl == NULL) {
		fprintf(stderr, "bad JSON argument: %s\n", jerr.text);
		exit(2);
	}
	next_id += 2;
	buf = msg_request_encode(service, method, pl, 0, &len);
	rc_send_frame(fd, sid, FRAME_TYPE_REQUEST, flags, buf, len);
	free(buf);
	json_decref(pl);
	return sid;
}

/* Read one frame (5 s deadline). Returns the payload (caller frees) and the header. */
static uint8_t *
rc_read_frame(int fd, struct frame_header *h, int timeout_ms)
{
	uint8_t hdr[FRAME_HEADER_SIZE];
	uint8_t *p;
	int64_t deadline = time_mono_ms() + timeout_ms;

	if (fd_wait(fd, POLLIN, deadline) <= 0 || read_full(fd, hdr, sizeof hdr) < 0) {
		fprintf(stderr, "no frame within %d ms\n", timeout_ms);
		exit(1);
	}
	frame_header_unpack(hdr, h);
	if (h->length > 64u * 1024 * 1024) {
		fprintf(stderr, "frame too long: %u\n", h->length);
		exit(1);
	}
	p = xmalloc(h->length + 1);
	if (read_full(fd, p, h->length) < 0) {
		fprintf(stderr, "short frame\n");
		exit(1);
	}
	p[h->length] = '\0';
	return p;
}

/* Read the response on sid (skipping data frames); returns its code, payload in *out. */
static int
rc_read_response(int fd, uint32_t sid, json_t **out, char *msgbuf, size_t msglen)
{
	struct frame_header h;
	struct msg_response r;
	struct status st;
	uint8_t *p;
	int code;

	for (;;) {
		p = rc_read_frame(fd, &h, response_ms);
		if (h.type == FRAME_TYPE_RESPONSE)
			break;
		free(p);
	}
	if (h.stream_id != sid) {
		fprintf(stderr, "response on stream %u, expected %u\n", h.stream_id, sid);
		exit(1);
	}
	if (msg_response_decode(p, h.length, &r, &st) < 0) {
		fprintf(stderr, "bad response: %s\n", st.msg);
		exit(1);
	}
	free(p);
	code = r.code;
	if (msgbuf != NULL)
		snprintf(msgbuf, msglen, "%s", r.message);
	if (out != NULL)
		*out = json_incref(r.payload);
	msg_response_clear(&r);
	return code;
}

static int
rc_call(int fd, const char *method, const char *json, json_t **out, char *msg, size_t len)
{
	uint32_t sid = rc_send_request(fd, PROTOCOL_TASK_SERVICE, method, json, 0);

	return rc_read_response(fd, sid, out, msg, len);
}

static int
mode_call(const char *sock, const char *method, const char *json)
{
	int fd = testlib_connect_or_exit(sock);
	char msg[600];
	json_t *out = NULL;
	char *s;
	int code;

	if (strcmp(method, "Wait") == 0)
		response_ms = 120000;
	code = rc_call(fd, method, json, &out, msg, sizeof msg);

	s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	if (code == 0)
		printf("OK %s\n", s);
	else
		printf("%s %s\n", status_code_name(code), msg);
	free(s);
	json_decref(out);
	close(fd);
	return 0;
}

/* After a bad input, the same connection must still answer a Connect. */
static int
rc_still_usable(int fd, const char *what)
{
	int code = rc_call(fd, "Connect", "{\"id\":\"x\"}", NULL, NULL, 0);

	if (code != 0) {
		printf("FAIL %s: the following Connect got %s\n", what, status_code_name(code));
		return 1;
	}
	return 0;
}

static int
rc_expect(int fd, uint32_t sid, int want, const char *what)
{
	char msg[600];
	int code = rc_read_response(fd, sid, NULL, msg, sizeof msg);

	if (code != want) {
		printf("FAIL %s: got %s (%s), want %s\n", what, status_code_name(code), msg,
		    status_code_name(want));
		return 1;
	}
	printf("ok   %-34s -> %s: %s\n", what, status_code_name(code), msg);
	return rc_still_usable(fd, what);
}

static int
mode_badinput(const char *sock, size_t maxmsg)
{
	static const char malformed[] = "{\"service\":\"containerd.task.v2.Task\",\"method\":";
	int fd = testlib_connect_or_exit(sock), fails = 0;
	uint32_t sid;
	char *big;
	size_t n;

	sid = next_id;
	next_id += 2;
	rc_send_frame(fd, sid, FRAME_TYPE_REQUEST, 0, malformed, sizeof malformed - 1);
	fails += rc_expect(fd, sid, 3, "malformed JSON");

	sid = rc_send_request(fd, PROTOCOL_TASK_SERVICE, "NoSuchMethod", "{}", 0);
	fails += rc_expect(fd, sid, 12, "unknown method");
	sid = rc_send_request(fd, "no.such.Service", "State", "{}", 0);
	fails += rc_expect(fd, sid, 12, "unknown service");
	sid = rc_send_request(fd, PROTOCOL_TASK_SERVICE, "Checkpoint", "{\"id\":\"c\"}", 0);
	fails += rc_expect(fd, sid, 12, "Checkpoint");
	sid = rc_send_request(fd, PROTOCOL_TASK_SERVICE, "State", "{}", 0);
	fails += rc_expect(fd, sid, 3, "missing field (State without id)");
	sid = rc_send_request(fd, PROTOCOL_TASK_SERVICE, "State", "{\"id\":42}", 0);
	fails += rc_expect(fd, sid, 3, "wrong type (id: 42)");
	sid = rc_send_request(
	    fd, PROTOCOL_TASK_SERVICE, "Create", "{\"id\":\"a/b\",\"bundle\":\"/x\"}", 0);
	fails += rc_expect(fd, sid, 3, "bad id (a/b)");
	sid =
	    rc_send_request(fd, PROTOCOL_TASK_SERVICE, "Kill", "{\"id\":\"nope\",\"signal\":9}", 0);
	fails += rc_expect(fd, sid, 5, "unknown container");

	/* Oversized: max_message_bytes + 1 of payload, a JSON string that would be valid. */
	n = maxmsg + 1;
	big = xmalloc(n);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	sid = next_id;
	next_id += 2;
	rc_send_frame(fd, sid, FRAME_TYPE_REQUEST, 0, big, n);
	free(big);
	fails += rc_expect(fd, sid, 8, "oversized payload");

	/* Even stream id: a client must use odd ids. */
	{
		size_t len;
		char *req = msg_request_encode(PROTOCOL_TASK_SERVICE, "Connect", NULL, 0, &len);

		rc_send_frame(fd, 2, FRAME_TYPE_REQUEST, 0, req, len);
		free(req);
		fails += rc_expect(fd, 2, 3, "even stream id");
	}
	close(fd);
	printf("%s: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
	return fails ? 1 : 0;
}

static int
mode_cycles(const char *sock, int n)
{
	for (int i = 0; i < n; i++) {
		int fd = testlib_connect_or_exit(sock);

		if (rc_call(fd, "Connect", "{\"id\":\"x\"}", NULL, NULL, 0) != 0) {
			printf("FAIL cycle %d\n", i);
			return 1;
		}
		close(fd);
	}
	printf("PASS %d cycles\n", n);
	return 0;
}

static int
mode_halfheader(const char *sock, int n)
{
	static const uint8_t half[5] = {0, 0, 0, 100, 0};
	int *fds = xcalloc((size_t)n, sizeof *fds);
	int64_t t0, t1;
	int fd, code;

	for (int i = 0; i < n; i++) {
		fds[i] = testlib_connect_or_exit(sock);
		if (write_all(fds[i], half, sizeof half) < 0)
			fatal("write");
	}
	t0 = time_mono_ms();
	fd = testlib_connect_or_exit(sock);
	code = rc_call(fd, "Connect", "{\"id\":\"x\"}", NULL, NULL, 0);
	t1 = time_mono_ms();
	printf("%s: with %d stalled half-header clients, a new client was answered (%s) in "
	       "%lld ms\n",
	    code == 0 && t1 - t0 < 1000 ? "PASS" : "FAIL", n, status_code_name(code),
	    (long long)(t1 - t0));
	close(fd);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return code == 0 && t1 - t0 < 1000 ? 0 : 1;
}

static int
mode_noread(const char *sock, int n)
{
	int hog = testlib_connect_or_exit(sock), fd, code;
	int64_t t0, t1;

	/* Non-blocking: once the shim stops reading from us, stop writing instead of hanging. */
	fd_set_nonblock(hog, true);
	for (int i = 0; i < n; i++) {
		size_t len, flen;
		char *req = msg_request_encode(PROTOCOL_TASK_SERVICE, "Connect", NULL, 0, &len);
		uint8_t *buf = frame_encode(next_id, FRAME_TYPE_REQUEST, 0, req, len, &flen);
		ssize_t w = write(hog, buf, flen);

		next_id += 2;
		free(req);
		free(buf);
		if (w < (ssize_t)flen) {
			printf("the non-reading client's socket filled after %d requests\n", i);
			break;
		}
	}
	t0 = time_mono_ms();
	fd = testlib_connect_or_exit(sock);
	code = rc_call(fd, "Connect", "{\"id\":\"x\"}", NULL, NULL, 0);
	t1 = time_mono_ms();
	printf("%s: beside a client that never reads, a new client was answered (%s) in %lld ms\n",
	    code == 0 && t1 - t0 < 1000 ? "PASS" : "FAIL", status_code_name(code),
	    (long long)(t1 - t0));
	close(fd);
	close(hog);
	return code == 0 && t1 - t0 < 1000 ? 0 : 1;
}

static int
mode_waits(const char *sock, int n, const char *id)
{
	int fd = testlib_connect_or_exit(sock), got = 0, states = 0;
	char json[300];
	uint32_t first = next_id, sid;
	int64_t t0, worst = 0;
	struct frame_header h;
	uint8_t *p;

	snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
	for (int i = 0; i < n; i++)
		rc_send_request(fd, PROTOCOL_TASK_SERVICE, "Wait", json, 0);
	/* State keeps flowing on the same connection while the Waits are parked. */
	for (int i = 0; i < 50; i++) {
		t0 = time_mono_ms();
		sid = rc_send_request(fd, PROTOCOL_TASK_SERVICE, "State", json, 0);
		if (rc_read_response(fd, sid, NULL, NULL, 0) != 0) {
			printf("FAIL State %d\n", i);
			return 1;
		}
		if (time_mono_ms() - t0 > worst)
			worst = time_mono_ms() - t0;
		states++;
	}
	printf("%d States answered while %d Waits parked (slowest %lld ms)\n", states, n,
	    (long long)worst);
	snprintf(json, sizeof json, "{\"id\":\"%s\",\"signal\":9}", id);
	sid = rc_send_request(fd, PROTOCOL_TASK_SERVICE, "Kill", json, 0);
	while (got < n) {
		p = rc_read_frame(fd, &h, 10000);
		if (h.type == FRAME_TYPE_RESPONSE && h.stream_id >= first &&
		    h.stream_id < first + 2u * (uint32_t)n) {
			struct msg_response r;
			struct status st;

			if (msg_response_decode(p, h.length, &r, &st) < 0 || r.code != 0) {
				printf("FAIL a Wait answered %d\n", r.code);
				return 1;
			}
			msg_response_clear(&r);
			got++;
		}
		free(p);
	}
	printf("PASS all %d Waits answered after the kill\n", got);
	close(fd);
	return 0;
}

static int
mode_subscribe(const char *sock, int n)
{
	int fd = testlib_connect_or_exit(sock);
	uint32_t sid =
	    rc_send_request(fd, PROTOCOL_EVENTS_SERVICE, "Subscribe", "{}", FRAME_FLAG_REMOTE_OPEN);
	struct frame_header h;
	struct msg_event ev;
	struct status st;
	uint8_t *p;

	if (rc_read_response(fd, sid, NULL, NULL, 0) != 0)
		return 1;
	printf("subscribed\n");
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		p = rc_read_frame(fd, &h, 30000);
		if (h.type != FRAME_TYPE_DATA || h.stream_id != sid ||
		    msg_event_decode(p, h.length, &ev, &st) < 0) {
			printf("FAIL unexpected frame type %u\n", h.type);
			return 1;
		}
		printf("%s\n", ev.topic);
		fflush(stdout);
		msg_event_clear(&ev);
		free(p);
	}
	close(fd);
	return 0;
}

/* Two requests back to back on one connection; each answer printed (flushed) on arrival. */
static int
mode_pair(const char *sock, char **argv)
{
	int fd = testlib_connect_or_exit(sock);
	int got = 0;
	uint32_t sid[2];

	sid[0] = rc_send_request(fd, PROTOCOL_TASK_SERVICE, argv[0], argv[1], 0);
	sid[1] = rc_send_request(fd, PROTOCOL_TASK_SERVICE, argv[2], argv[3], 0);
	while (got < 2) {
		struct frame_header h;
		struct msg_response r;
		struct status st;
		uint8_t *p = rc_read_frame(fd, &h, 10000);
		int k = h.stream_id == sid[0] ? 0 : h.stream_id == sid[1] ? 1 : -1;

		if (h.type != FRAME_TYPE_RESPONSE || k < 0) {
			free(p);
			continue;
		}
		if (msg_response_decode(p, h.length, &r, &st) < 0) {
			fprintf(stderr, "bad response: %s\n", st.msg);
			exit(1);
		}
		free(p);
		printf("%s: %s %s\n", argv[2 * k], r.code == 0 ? "OK" : status_code_name(r.code),
		    r.message);
		fflush(stdout);
		msg_response_clear(&r);
		got++;
	}
	close(fd);
	return 0;
}

/* A second request on a stream id still in flight is answered, the first one still served. */
static int
mode_dupsid(const char *sock, const char *id)
{
	int fd = testlib_connect_or_exit(sock), kfd;
	char json[512], msg[600];
	uint32_t sid;
	int code;

	snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
	sid = rc_send_request(fd, PROTOCOL_TASK_SERVICE, "Wait", json, 0);
	next_id = sid;
	rc_send_request(fd, PROTOCOL_TASK_SERVICE, "State", json, 0);
	code = rc_read_response(fd, sid, NULL, msg, sizeof msg);
	printf("duplicate: %s %s\n", status_code_name(code), msg);
	if (code != ST_INVALID_ARGUMENT)
		return 1;
	kfd = testlib_connect_or_exit(sock);
	snprintf(json, sizeof json, "{\"id\":\"%s\",\"signal\":9}", id);
	code = rc_call(kfd, "Kill", json, NULL, msg, sizeof msg);
	close(kfd);
	if (code != 0) {
		printf("Kill: %s %s\n", status_code_name(code), msg);
		return 1;
	}
	code = rc_read_response(fd, sid, NULL, msg, sizeof msg);
	printf("first (Wait): %s %s\n", status_code_name(code), msg);
	close(fd);
	return code == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "call") == 0)
		return mode_call(argv[2], argv[3], argv[4]);
	if (argc == 4 && strcmp(argv[1], "badinput") == 0)
		return mode_badinput(argv[2], (size_t)atol(argv[3]));
	if (argc == 4 && strcmp(argv[1], "cycles") == 0)
		return mode_cycles(argv[2], atoi(argv[3]));
	if (argc == 4 && strcmp(argv[1], "halfheader") == 0)
		return mode_halfheader(argv[2], atoi(argv[3]));
	if (argc == 5 && strcmp(argv[1], "waits") == 0)
		return mode_waits(argv[2], atoi(argv[3]), argv[4]);
	if (argc == 4 && strcmp(argv[1], "noread") == 0)
		return mode_noread(argv[2], atoi(argv[3]));
	if (argc == 4 && strcmp(argv[1], "subscribe") == 0)
		return mode_subscribe(argv[2], atoi(argv[3]));
	if (argc == 7 && strcmp(argv[1], "pair") == 0)
		return mode_pair(argv[2], argv + 3);
	if (argc == 4 && strcmp(argv[1], "dupsid") == 0)
		return mode_dupsid(argv[2], argv[3]);
	fprintf(stderr, "usage: shim_rawclient "
			"call|badinput|cycles|halfheader|noread|waits|subscribe|pair|dupsid "
			"SOCK ...\n");
	return 2;
}
