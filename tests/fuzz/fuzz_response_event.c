/*
 * fuzz_response_event.c: libFuzzer target for the response and event envelopes
 * (common/msg.c), as the control client and the shim's guest link decode them.
 *
 * Each input is decoded both as a response and as an event. A failure must be
 * INVALID_ARGUMENT; a success must keep the envelope's promises (a code in 0..16, an object
 * payload; a non-empty topic, a timestamp, an object event) and re-encode to bytes that
 * decode to the same envelope. Response payloads are then walked with the fields of
 * docs/CONTRACT.md 4's response column, and event bodies with the fields of the task events,
 * through the same typed accessors the readers use. Each decoded payload is also dumped by msg.c's
 * own JSON writer and by jansson's json_dumps, which must agree byte for byte (the writer is only
 * fast, never different). Decoded envelopes are owned here and cleared.
 */
#include "config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "msg.h"

/* Field tables: {key, type, required, nested table}; a NULL key ends one. */

/* Pids' processes[] entries. */
static const struct fuzz_field process_fields[] = {
    {"pid", FF_U32, false, NULL},
    {NULL, 0, false, NULL},
};

/* The union of docs/CONTRACT.md 4's response payloads (every field is optional in one of them). */
static const struct fuzz_field response_fields[] = {
    {"pid", FF_U32, false, NULL},
    {"id", FF_STRING, false, NULL},
    {"bundle", FF_STRING, false, NULL},
    {"status", FF_STRING, false, NULL},
    {"stdin", FF_STRING, false, NULL},
    {"stdout", FF_STRING, false, NULL},
    {"stderr", FF_STRING, false, NULL},
    {"terminal", FF_BOOL, false, NULL},
    {"exit_status", FF_U32, false, NULL},
    {"exited_at", FF_STRING, false, NULL},
    {"exec_id", FF_STRING, false, NULL},
    {"processes", FF_TABLES, false, process_fields},
    {"stats", FF_OBJECT, false, NULL},
    {"shim_pid", FF_U32, false, NULL},
    {"task_pid", FF_U32, false, NULL},
    {"version", FF_STRING, false, NULL},
    {NULL, 0, false, NULL},
};

/* The task events' bodies (/tasks/exit, /tasks/oom, ...). */
static const struct fuzz_field event_fields[] = {
    {"container_id", FF_STRING, false, NULL},
    {"id", FF_STRING, false, NULL},
    {"exec_id", FF_STRING, false, NULL},
    {"pid", FF_U32, false, NULL},
    {"exit_status", FF_U32, false, NULL},
    {"exited_at", FF_STRING, false, NULL},
    {"bundle", FF_STRING, false, NULL},
    {NULL, 0, false, NULL},
};

/* Decode as a response; check, re-encode, walk. */
static void
response_check(const uint8_t *data, size_t size)
{
	struct msg_response r, again;
	struct status st;
	size_t len;
	char *enc, *ref;

	status_clear(&st);
	if (msg_response_decode(data, size, &r, &st) < 0) {
		fuzz_check(st.code == ST_INVALID_ARGUMENT && st.msg[0] != '\0',
		    "response decode failed with code %d", st.code);
		fuzz_check(r.root == NULL, "a failed decode kept its tree");
		return;
	}
	fuzz_check(r.code >= 0 && r.code <= ST_UNAUTHENTICATED, "code %d", r.code);
	fuzz_check(r.message != NULL && json_is_object(r.payload), "envelope incomplete");
	enc = msg_response_encode(r.code, r.message, r.payload, &len);
	fuzz_check(
	    msg_response_decode(enc, len, &again, &st) == 0, "re-encoded response: %s", st.msg);
	fuzz_check(again.code == r.code && strcmp(again.message, r.message) == 0 &&
		       json_equal(again.payload, r.payload),
	    "response changed through encode/decode");
	msg_response_clear(&again);
	free(enc);
	/* Differential: msg.c's own writer gives exactly jansson's compact text. */
	enc = msg_dump_json(r.payload, &len);
	ref = json_dumps(r.payload, JSON_COMPACT);
	fuzz_check(ref != NULL && strlen(ref) == len && memcmp(enc, ref, len) == 0,
	    "msg_dump_json and json_dumps disagree:\n%s\n%s", enc, ref ? ref : "(null)");
	free(ref);
	free(enc);
	fuzz_fields_walk(r.payload, "payload", response_fields);
	msg_response_clear(&r);
}

/* Decode as an event; check, re-encode, walk. */
static void
event_check(const uint8_t *data, size_t size)
{
	struct msg_event e, again;
	struct status st;
	size_t len;
	char *enc;

	status_clear(&st);
	if (msg_event_decode(data, size, &e, &st) < 0) {
		fuzz_check(st.code == ST_INVALID_ARGUMENT && st.msg[0] != '\0',
		    "event decode failed with code %d", st.code);
		fuzz_check(e.root == NULL, "a failed decode kept its tree");
		return;
	}
	fuzz_check(
	    e.topic != NULL && e.topic[0] != '\0' && e.timestamp != NULL && json_is_object(e.event),
	    "envelope incomplete");
	enc = msg_event_encode(e.topic, e.timestamp, e.event, &len);
	fuzz_check(msg_event_decode(enc, len, &again, &st) == 0, "re-encoded event: %s", st.msg);
	fuzz_check(strcmp(again.topic, e.topic) == 0 && strcmp(again.timestamp, e.timestamp) == 0 &&
		       json_equal(again.event, e.event),
	    "event changed through encode/decode");
	msg_event_clear(&again);
	free(enc);
	fuzz_fields_walk(e.event, "event", event_fields);
	msg_event_clear(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	response_check(data, size);
	event_check(data, size);
	return 0;
}
