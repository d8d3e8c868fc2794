/*
 * fuzz_pb.c: libFuzzer target for the protobuf decoders of common/msg-pb.c.
 *
 * The first input byte picks the decoder, the rest is its input:
 *   0 mod 3  msg_pb_request_decode (a ttrpc Request from a peer: the shim's server side);
 *   1 mod 3  msg_pb_response_decode for the Task method named by the second byte (clients);
 *   2 mod 3  msg_pb_event_decode (a Forward envelope).
 * Each must fail cleanly or give a tree that encodes back: a decoded request re-encodes
 * (msg_pb_request_encode) and decodes to the same payload; a decoded response or event
 * re-encodes and decodes to the same tree (Stats excepted: its Any is filled from the guest's
 * stats shape, not from the Metrics tree a client decodes). A decoded request's tree, taken
 * as a method's result, must encode into some response without crashing.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "msg-pb.h"

static const char *const fuzz_pb_methods[] = {"Create", "Start", "Exec", "State", "Pids", "Kill",
    "Wait", "CloseIO", "ResizePty", "Pause", "Resume", "Update", "Stats", "Delete", "Connect",
    "Shutdown", "Checkpoint"};

static void
fuzz_pb_request(const uint8_t *data, size_t size)
{
	struct msg_request r, again;
	struct status st;
	uint8_t *buf;
	size_t len;

	if (msg_pb_request_decode(data, size, &r, &st) < 0) {
		fuzz_check(st.code == ST_INVALID_ARGUMENT, "request decode error code %d", st.code);
		return;
	}
	fuzz_check(r.codec == MSG_CODEC_PROTOBUF && *r.service != '\0' && *r.method != '\0' &&
		       json_is_object(r.payload) && r.timeout_nano >= 0,
	    "decoded request");
	fuzz_check(msg_pb_request_encode(
		       r.service, r.method, r.payload, r.timeout_nano, &buf, &len, &st) == 0,
	    "decoded request does not encode: %s", st.msg);
	fuzz_check(
	    msg_pb_request_decode(buf, len, &again, &st) == 0, "re-encoded request: %s", st.msg);
	fuzz_check(json_equal(r.payload, again.payload) && again.pb_method == r.pb_method,
	    "request payload changed in a round trip");
	free(buf);
	msg_request_clear(&again);
	/* Any tree as a result: an answer (maybe INTERNAL), never a crash. */
	buf = msg_pb_response_encode(r.pb_method, 0, "", r.payload, &len);
	free(buf);
	msg_request_clear(&r);
}

static void
fuzz_pb_response(const uint8_t *data, size_t size)
{
	const char *name;
	struct msg_response r, again;
	struct status st;
	unsigned m;
	uint8_t *buf;
	size_t len;

	if (size < 1)
		return;
	name = fuzz_pb_methods[data[0] % ARRAY_SIZE(fuzz_pb_methods)];
	m = msg_pb_method(PROTOCOL_TASK_SERVICE, name);
	fuzz_check(m != 0, "method %s", name);
	if (msg_pb_response_decode(m, data + 1, size - 1, &r, &st) < 0)
		return;
	fuzz_check(r.code >= 0 && r.code <= ST_UNAUTHENTICATED && json_is_object(r.payload),
	    "decoded response");
	buf = msg_pb_response_encode(m, r.code, r.message, r.payload, &len);
	fuzz_check(msg_pb_response_decode(m, buf, len, &again, &st) == 0, "re-encoded response: %s",
	    st.msg);
	if (strcmp(name, "Stats") != 0)
		fuzz_check(again.code == r.code && strcmp(again.message, r.message) == 0 &&
			       json_equal(again.payload, r.payload),
		    "%s response changed in a round trip", name);
	free(buf);
	msg_response_clear(&again);
	msg_response_clear(&r);
}

static void
fuzz_pb_event(const uint8_t *data, size_t size)
{
	char *topic, *ts, *ns, *topic2, *ts2, *ns2;
	json_t *ev, *ev2;
	struct status st;
	uint8_t *buf;
	size_t len;

	if (msg_pb_event_decode(data, size, &topic, &ts, &ns, &ev, &st) < 0)
		return;
	/* A topic name the event's type does not match is the encoder's to refuse. */
	if (msg_pb_event_encode(topic, ts, ns, ev, &buf, &len, &st) == 0) {
		fuzz_check(msg_pb_event_decode(buf, len, &topic2, &ts2, &ns2, &ev2, &st) == 0,
		    "re-encoded event: %s", st.msg);
		fuzz_check(
		    strcmp(topic, topic2) == 0 && strcmp(ts, ts2) == 0 && strcmp(ns, ns2) == 0,
		    "event envelope changed in a round trip");
		free(topic2);
		free(ts2);
		free(ns2);
		json_decref(ev2);
		free(buf);
	}
	free(topic);
	free(ts);
	free(ns);
	json_decref(ev);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_pb_request(data + 1, size - 1);
		break;
	case 1:
		fuzz_pb_response(data + 1, size - 1);
		break;
	default:
		fuzz_pb_event(data + 1, size - 1);
		break;
	}
	return 0;
}
