/*
 * pb_client.c: vmshim's protobuf side as stock containerd sees it, for the integration tests.
 *
 *   call SOCK METHOD JSON [TIMEOUT_MS]   send a protobuf Task request (the JSON tree is encoded
 *                                        as the method's containerd.task.v2 message) and print
 *                                        "OK {payload}" or "CODE message"
 *   badinput SOCK MAX_BYTES              the bad-input rows in protobuf: every answer must be a
 *                                        protobuf Response with the expected code, and the
 *                                        connection must stay usable; prints PASS/FAIL
 *   encode METHOD JSON                   write the ttrpc Request bytes to stdout (interop checks
 *                                        against Google's protobuf implementation)
 *   encode-response METHOD JSON          write an OK ttrpc Response to METHOD to stdout
 *   encode-event TOPIC JSON              write the ForwardRequest of an event to stdout
 *                                        (namespace ns1, a fixed timestamp)
 *   decode                               read a ttrpc Request from stdin, print
 *                                        "SERVICE METHOD {payload}" (keys sorted)
 *   events SOCK OUT [HOLD_FILE [CLOSE_FIRST]]
 *                                        a fake containerd Events service: serve Events/Forward
 *                                        on SOCK, append each event it answers to OUT as one
 *                                        JSON line {"topic","namespace","event"}; a /tasks/exit
 *                                        is answered only once HOLD_FILE exists (its arrival is
 *                                        marked by OUT.exit-received); the first CLOSE_FIRST
 *                                        requests are not answered (the connection is closed)
 *
 * Single-threaded, blocking I/O with deadlines; exits 1 on any unexpected answer.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "msg-pb.h"
#include "testlib.h"
#include "transport.h"
#include "ttrpc.pb-c.h"
#include "util.h"

#define TASK PROTOCOL_TASK_SERVICE

static uint32_t next_id = 1;

static json_t *
pc_json(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (j == NULL) {
		fprintf(stderr, "bad JSON argument: %s\n", err.text);
		exit(2);
	}
	return j;
}

static void
pc_send(int fd, uint32_t sid, const void *p, size_t len)
{
	size_t n;
	uint8_t *buf = frame_encode(sid, FRAME_TYPE_REQUEST, 0, p, len, &n);

	if (write_all(fd, buf, n) < 0)
		fatal("write");
	free(buf);
}

/* Send a Task request; returns its stream id. */
static uint32_t
pc_request(int fd, const char *method, json_t *payload)
{
	struct status st;
	uint32_t sid = next_id;
	uint8_t *buf;
	size_t len;

	if (msg_pb_request_encode(TASK, method, payload, 0, &buf, &len, &st) < 0) {
		fprintf(stderr, "encode: %s\n", st.msg);
		exit(2);
	}
	next_id += 2;
	pc_send(fd, sid, buf, len);
	free(buf);
	return sid;
}

/* Read one frame until deadline; the payload (caller frees) or NULL on timeout/EOF. */
static uint8_t *
pc_read_frame(int fd, struct frame_header *h, int timeout_ms)
{
	int64_t deadline = time_mono_ms() + timeout_ms;
	uint8_t hdr[FRAME_HEADER_SIZE];
	uint8_t *p;

	if (read_full_deadline(fd, hdr, sizeof hdr, deadline) < 0)
		return NULL;
	frame_header_unpack(hdr, h);
	if (h->length > 64u * 1024 * 1024) {
		fprintf(stderr, "frame too long: %u\n", h->length);
		exit(1);
	}
	p = xmalloc(h->length + 1);
	if (read_full_deadline(fd, p, h->length, deadline) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

/* The protobuf response on sid for method: its code; message and payload tree out. */
static int
pc_response(int fd, uint32_t sid, const char *method, int timeout_ms, struct msg_response *r)
{
	struct frame_header h;
	struct status st;
	uint8_t *p = pc_read_frame(fd, &h, timeout_ms);

	if (p == NULL) {
		fprintf(stderr, "no response within %d ms\n", timeout_ms);
		exit(1);
	}
	if (h.type != FRAME_TYPE_RESPONSE || h.stream_id != sid) {
		fprintf(stderr, "frame type %u on stream %u, expected a response on %u\n", h.type,
		    h.stream_id, sid);
		exit(1);
	}
	if (msg_pb_payload_is_json(p, h.length)) {
		fprintf(stderr, "a JSON answer to a protobuf request: %.*s\n", (int)h.length, p);
		exit(1);
	}
	if (msg_pb_response_decode(msg_pb_method(TASK, method), p, h.length, r, &st) < 0) {
		fprintf(stderr, "undecodable response: %s\n", st.msg);
		exit(1);
	}
	free(p);
	return r->code;
}

static int
pc_call(const char *sock, const char *method, const char *json, int timeout_ms)
{
	int fd = testlib_connect_or_exit(sock);
	json_t *pl = pc_json(json);
	struct msg_response r;
	uint32_t sid = pc_request(fd, method, pl);
	char *text;

	if (pc_response(fd, sid, method, timeout_ms, &r) == 0) {
		text = json_dumps(r.payload, JSON_COMPACT);
		printf("OK %s\n", text);
		free(text);
	} else {
		printf("%s %s\n", status_code_name(r.code), r.message);
	}
	msg_response_clear(&r);
	json_decref(pl);
	close(fd);
	return 0;
}

/* Send raw bytes as a request; the answer must be a protobuf response with code `want`. */
static int
pc_expect_raw(int fd, const void *buf, size_t len, int want, const char *what)
{
	struct msg_response r;
	uint32_t sid = next_id;
	int code;

	next_id += 2;
	pc_send(fd, sid, buf, len);
	code = pc_response(fd, sid, "", 10000, &r);
	if (code != want) {
		printf("FAIL %s: %s %s (want %s)\n", what, status_code_name(code), r.message,
		    status_code_name(want));
		msg_response_clear(&r);
		return 1;
	}
	printf("ok   %s: %s %s\n", what, status_code_name(code), r.message);
	msg_response_clear(&r);
	return 0;
}

static int
pc_expect(int fd, const char *method, const char *json, int want, const char *what)
{
	json_t *pl = pc_json(json);
	struct msg_response r;
	uint32_t sid = pc_request(fd, method, pl);
	int code = pc_response(fd, sid, method, 10000, &r);

	json_decref(pl);
	if (code != want) {
		printf("FAIL %s: %s %s (want %s)\n", what, status_code_name(code), r.message,
		    status_code_name(want));
		msg_response_clear(&r);
		return 1;
	}
	printf("ok   %s: %s %s\n", what, status_code_name(code), r.message);
	msg_response_clear(&r);
	return 0;
}

/* A ttrpc Request with raw payload bytes. */
static uint8_t *
pc_raw_request(const char *service, const char *method, const void *pl, size_t plen, size_t *len)
{
	Ttrpc__Request rq = TTRPC__REQUEST__INIT;
	uint8_t *buf;

	rq.service = (char *)service;
	rq.method = (char *)method;
	rq.payload.data = (uint8_t *)pl;
	rq.payload.len = plen;
	*len = ttrpc__request__get_packed_size(&rq);
	buf = xmalloc(*len);
	ttrpc__request__pack(&rq, buf);
	return buf;
}

static int
pc_badinput(const char *sock, size_t max)
{
	static const uint8_t trunc[] = {0x0a, 0x80};
	static const uint8_t trunc_state[] = {0x0a, 9, 'c'};
	static const uint8_t not_json[] = {'[', '1', ']'};
	int fd = testlib_connect_or_exit(sock), fails = 0;
	uint8_t *buf, *big;
	size_t len;

	fails += pc_expect_raw(fd, trunc, sizeof trunc, 3, "truncated varint");
	fails += pc_expect_raw(fd, not_json, sizeof not_json, 3, "neither JSON nor protobuf");
	fails += pc_expect_raw(fd, "", 0, 3, "empty payload");
	buf = pc_raw_request(TASK, "State", trunc_state, sizeof trunc_state, &len);
	fails += pc_expect_raw(fd, buf, len, 3, "truncated StateRequest");
	free(buf);
	fails += pc_expect(fd, "NoSuchMethod", "{}", 12, "unknown method");
	buf = pc_raw_request("no.such.Service", "State", NULL, 0, &len);
	fails += pc_expect_raw(fd, buf, len, 12, "unknown service");
	free(buf);
	fails += pc_expect(fd, "Checkpoint", "{\"id\":\"c\"}", 12, "Checkpoint");
	fails += pc_expect(fd, "State", "{}", 3, "State without id");
	fails += pc_expect(fd, "Create", "{\"id\":\"a/b\",\"bundle\":\"/x\"}", 3, "bad id (a/b)");
	fails += pc_expect(fd, "Kill", "{\"id\":\"nope\",\"signal\":9}", 5, "unknown container");
	fails += pc_expect(fd, "Wait", "{\"id\":\"nope\"}", 5, "Wait on an unknown container");
	fails += pc_expect(fd, "Exec",
	    "{\"id\":\"nope\",\"exec_id\":\"e\",\"spec\":{\"args\":[\"true\"]}}", 5,
	    "Exec in an unknown container");
	/* Over max_message_bytes: RESOURCE_EXHAUSTED in protobuf, the connection still works. */
	big = xcalloc(1, max + 64);
	buf = pc_raw_request(TASK, "State", big, max + 1, &len);
	fails += pc_expect_raw(fd, buf, len, 8, "oversized payload");
	free(buf);
	free(big);
	fails += pc_expect(fd, "Connect", "{\"id\":\"x\"}", 0, "the connection still works");
	/* Events/Subscribe is JSON only. */
	buf = pc_raw_request(PROTOCOL_EVENTS_SERVICE, "Subscribe", NULL, 0, &len);
	fails += pc_expect_raw(fd, buf, len, 12, "Subscribe in protobuf");
	free(buf);
	close(fd);
	printf("%s: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
	return fails ? 1 : 0;
}

static int
pc_encode(const char *method, const char *json)
{
	json_t *pl = pc_json(json);
	struct status st;
	uint8_t *buf;
	size_t len;

	if (msg_pb_request_encode(TASK, method, pl, 0, &buf, &len, &st) < 0) {
		fprintf(stderr, "encode: %s\n", st.msg);
		return 1;
	}
	if (write_all(STDOUT_FILENO, buf, len) < 0)
		fatal("write");
	free(buf);
	json_decref(pl);
	return 0;
}

/* A Task method's response (code 0) or an event's ForwardRequest, as bytes on stdout. */
static int
pc_encode_answer(const char *what, const char *name, const char *json)
{
	json_t *pl = pc_json(json);
	struct status st;
	uint8_t *buf;
	size_t len;

	if (strcmp(what, "encode-response") == 0) {
		buf = msg_pb_response_encode(msg_pb_method(TASK, name), 0, "", pl, &len);
	} else if (msg_pb_event_encode(
		       name, "2026-11-22T05:50:44.123456789Z", "ns1", pl, &buf, &len, &st) < 0) {
		fprintf(stderr, "encode: %s\n", st.msg);
		return 1;
	}
	if (write_all(STDOUT_FILENO, buf, len) < 0)
		fatal("write");
	free(buf);
	json_decref(pl);
	return 0;
}

static int
pc_decode(void)
{
	static uint8_t buf[1 << 20];
	struct msg_request r;
	struct status st;
	size_t len = 0;
	ssize_t n;
	char *text;

	while ((n = read(STDIN_FILENO, buf + len, sizeof buf - len)) > 0)
		len += (size_t)n;
	if (msg_pb_request_decode(buf, len, &r, &st) < 0) {
		printf("%s %s\n", status_code_name(st.code), st.msg);
		return 1;
	}
	text = json_dumps(r.payload, JSON_COMPACT | JSON_SORT_KEYS);
	printf("%s %s %s\n", r.service, r.method, text);
	free(text);
	msg_request_clear(&r);
	return 0;
}

/* ---- the fake containerd Events service ---- */

static void
pc_respond(int fd, uint32_t sid, int code, const char *message)
{
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	uint8_t out[512];
	size_t n, fn;
	uint8_t *frame;

	status.code = code;
	status.message = (char *)message;
	resp.status = &status;
	n = ttrpc__response__pack(&resp, out);
	frame = frame_encode(sid, FRAME_TYPE_RESPONSE, 0, out, n, &fn);
	if (write_all(fd, frame, fn) < 0)
		fprintf(stderr, "events: write: %s\n", strerror(errno));
	free(frame);
}

/* One connection: serve Forward requests until EOF; false when it was closed on purpose. */
static void
pc_events_conn(int fd, FILE *out, const char *outpath, const char *hold, int *close_first)
{
	struct frame_header h;
	Ttrpc__Request *rq;
	struct status st;
	char *topic, *ts, *ns, *line, mark[4096];
	json_t *ev, *rec;
	uint8_t *p;
	struct stat sb;

	while ((p = pc_read_frame(fd, &h, 3600 * 1000)) != NULL) {
		rq = ttrpc__request__unpack(NULL, h.length, p);
		free(p);
		if (h.type != FRAME_TYPE_REQUEST || rq == NULL ||
		    strcmp(rq->service, PROTOCOL_CONTAINERD_EVENTS_SERVICE) != 0 ||
		    strcmp(rq->method, PROTOCOL_CONTAINERD_EVENTS_FORWARD) != 0) {
			fprintf(stderr, "events: unexpected frame\n");
			pc_respond(fd, h.stream_id, 12, "not Events/Forward");
			if (rq != NULL)
				ttrpc__request__free_unpacked(rq, NULL);
			continue;
		}
		if (msg_pb_event_decode(
			rq->payload.data, rq->payload.len, &topic, &ts, &ns, &ev, &st) < 0) {
			fprintf(stderr, "events: %s\n", st.msg);
			pc_respond(fd, h.stream_id, 3, st.msg);
			ttrpc__request__free_unpacked(rq, NULL);
			continue;
		}
		/* containerd's shims also put the namespace in the ttrpc metadata. */
		bool md_ok = false;
		for (size_t i = 0; i < rq->n_metadata; i++)
			if (strcmp(rq->metadata[i]->key, "containerd-namespace-ttrpc") == 0 &&
			    strcmp(rq->metadata[i]->value, ns) == 0)
				md_ok = true;
		ttrpc__request__free_unpacked(rq, NULL);
		if (!md_ok) {
			fprintf(stderr, "events: no containerd-namespace-ttrpc metadata\n");
			pc_respond(fd, h.stream_id, 3, "namespace metadata missing");
			free(topic);
			free(ts);
			free(ns);
			json_decref(ev);
			continue;
		}
		if (*close_first > 0) {
			(*close_first)--;
			free(topic);
			free(ts);
			free(ns);
			json_decref(ev);
			return; /* unanswered: the shim must send it again */
		}
		if (hold != NULL && strcmp(topic, "/tasks/exit") == 0) {
			snprintf(mark, sizeof mark, "%s.exit-received", outpath);
			close(open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
			while (stat(hold, &sb) != 0)
				poll(NULL, 0, 10);
		}
		rec = json_pack("{s:s, s:s, s:s, s:o}", "topic", topic, "timestamp", ts,
		    "namespace", ns, "event", ev);
		line = json_dumps(rec, JSON_COMPACT);
		fprintf(out, "%s\n", line);
		fflush(out);
		free(line);
		json_decref(rec);
		free(topic);
		free(ts);
		free(ns);
		pc_respond(fd, h.stream_id, 0, "");
	}
}

static int
pc_events(const char *sock, const char *outpath, const char *hold, int close_first)
{
	struct status st;
	int lfd, fd;
	FILE *out = fopen(outpath, "ae");

	if (out == NULL)
		fatal("fopen %s", outpath);
	/* SIGTERM ends it (the default action): each line is flushed as it is written. */
	lfd = transport_listen_unix(sock, 0600, 16, &st);
	if (lfd < 0) {
		fprintf(stderr, "listen %s: %s\n", sock, st.msg);
		return 1;
	}
	for (;;) {
		struct pollfd pfd = {lfd, POLLIN, 0};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		fd = transport_accept(lfd, false);
		if (fd < 0)
			continue;
		pc_events_conn(fd, out, outpath, hold, &close_first);
		close(fd);
	}
	close(lfd);
	fclose(out);
	return 0;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "call") == 0)
		return pc_call(argv[2], argv[3], argv[4], argc == 6 ? atoi(argv[5]) : 30000);
	if (argc == 4 && strcmp(argv[1], "badinput") == 0)
		return pc_badinput(argv[2], (size_t)atol(argv[3]));
	if (argc == 4 && strcmp(argv[1], "encode") == 0)
		return pc_encode(argv[2], argv[3]);
	if (argc == 4 &&
	    (strcmp(argv[1], "encode-response") == 0 || strcmp(argv[1], "encode-event") == 0))
		return pc_encode_answer(argv[1], argv[2], argv[3]);
	if (argc == 2 && strcmp(argv[1], "decode") == 0)
		return pc_decode();
	if (argc >= 4 && argc <= 6 && strcmp(argv[1], "events") == 0)
		return pc_events(argv[2], argv[3], argc >= 5 && *argv[4] ? argv[4] : NULL,
		    argc == 6 ? atoi(argv[5]) : 0);
	fprintf(stderr, "usage: pb_client call|badinput|encode|decode|events ...\n");
	return 2;
}
