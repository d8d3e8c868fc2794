/*
 * test_msg_pb.c: the protobuf codec (common/msg-pb.c).
 *
 * Round trips of every Task method's request and response and of every event topic, through
 * the client-side encoders and the server-side decoders (and back); exact bytes for a few
 * messages, hand-encoded from the protobuf wire format; the mapping rules (proto3 defaults,
 * the Status enum, Timestamps, maps, the Any fields); and the ways a peer can send bad bytes
 * (truncated varint, wrong wire type, a length past the end, NUL or invalid UTF-8 in a string,
 * an Any of the wrong type, malformed JSON in an Any), each INVALID_ARGUMENT with a message
 * naming the field. Single-threaded; everything decoded is freed so LeakSanitizer checks the
 * codec's ownership.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg-pb.h"
#include "shim.pb-c.h"
#include "status.h"
#include "ttrpc.pb-c.h"
#include "unit.h"
#include "util.h"
#include "wkt.pb-c.h"

#define TASK PROTOCOL_TASK_SERVICE

static json_t *
json_parse(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (j == NULL)
		fatalx("test literal: %s: %s", text, err.text);
	return j;
}

/* a and b are equal JSON; prints both when not. */
static int
tree_equal(json_t *a, json_t *b)
{
	if (json_equal(a, b))
		return 1;
	char *sa = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
	char *sb = json_dumps(b, JSON_SORT_KEYS | JSON_COMPACT);
	fprintf(stderr, "\n  got      %s\n  expected %s\n", sa, sb);
	free(sa);
	free(sb);
	return 0;
}

static int
msg_has(const struct status *st, const char *needle)
{
	if (strstr(st->msg, needle) != NULL)
		return 1;
	fprintf(stderr, "\n  message \"%s\" lacks \"%s\"\n", st->msg, needle);
	return 0;
}

/* Every Task method: a request and a response tree with no proto3 default in them. */
static const struct {
	const char *method;
	const char *req;
	const char *resp;
} rows[] = {
    {"Create",
	"{\"id\":\"c1\",\"bundle\":\"/b\",\"rootfs\":[{\"type\":\"overlay\",\"source\":\"o\","
	"\"target\":\"/t\",\"options\":[\"lowerdir=/l\",\"\"]}],\"terminal\":true,"
	"\"stdin\":\"/i\",\"stdout\":\"/o\",\"stderr\":\"/e\",\"checkpoint\":\"cp\","
	"\"parent_checkpoint\":\"pc\",\"options\":{\"type_url\":\"t\",\"config_path\":\"/"
	"c.json\"}}",
	"{\"pid\":42}"},
    {"Start", "{\"id\":\"c1\",\"exec_id\":\"e1\"}", "{\"pid\":7}"},
    {"Exec",
	"{\"id\":\"c1\",\"exec_id\":\"e1\",\"terminal\":true,\"stdin\":\"/i\",\"stdout\":\"/o\","
	"\"stderr\":\"/e\",\"spec\":{\"args\":[\"sh\",\"-c\",\"echo hi\"],\"cwd\":\"/\","
	"\"env\":[\"A=1\"]}}",
	"{}"},
    {"State", "{\"id\":\"c1\",\"exec_id\":\"e1\"}",
	"{\"id\":\"c1\",\"bundle\":\"/b\",\"pid\":9,\"status\":\"STOPPED\",\"stdin\":\"/i\","
	"\"stdout\":\"/o\",\"stderr\":\"/e\",\"terminal\":true,\"exit_status\":137,"
	"\"exited_at\":\"2026-11-22T05:50:44.123456789Z\",\"exec_id\":\"e1\"}"},
    {"Pids", "{\"id\":\"c1\"}", "{\"processes\":[{\"pid\":1},{\"pid\":2}]}"},
    {"Kill", "{\"id\":\"c1\",\"exec_id\":\"e1\",\"signal\":9,\"all\":true}", "{}"},
    {"Wait", "{\"id\":\"c1\",\"exec_id\":\"e1\"}",
	"{\"exit_status\":3,\"exited_at\":\"1999-12-31T23:59:59.000000001Z\"}"},
    {"CloseIO", "{\"id\":\"c1\",\"exec_id\":\"e1\",\"stdin\":true}", "{}"},
    {"ResizePty", "{\"id\":\"c1\",\"exec_id\":\"e1\",\"width\":80,\"height\":24}", "{}"},
    {"Pause", "{\"id\":\"c1\"}", "{}"},
    {"Resume", "{\"id\":\"c1\"}", "{}"},
    {"Update",
	"{\"id\":\"c1\",\"resources\":{\"memory\":{\"limit\":1048576}},"
	"\"annotations\":{\"a\":\"1\",\"b\":\"\"}}",
	"{}"},
    {"Stats", "{\"id\":\"c1\"}",
	"{\"stats\":{\"cpu\":{\"usage_usec\":5},\"memory\":{\"usage_bytes\":4096,"
	"\"limit_bytes\":8192},\"pids\":{\"current\":3}}}"},
    {"Delete", "{\"id\":\"c1\",\"exec_id\":\"e1\"}",
	"{\"pid\":9,\"exit_status\":1,\"exited_at\":\"2026-01-02T03:04:05.000000000Z\"}"},
    {"Connect", "{\"id\":\"c1\"}", "{\"shim_pid\":100,\"task_pid\":9,\"version\":\"0.1.0\"}"},
    {"Shutdown", "{\"id\":\"c1\",\"now\":true}", "{}"},
    {"Checkpoint", "{\"id\":\"c1\",\"path\":\"/p\"}", "{}"},
};

/* Stats comes back as the cgroups Metrics containerd reads (cpu in nanoseconds). */
static const char stats_metrics[] =
    "{\"stats\":{\"cpu\":{\"usage\":{\"total\":5000}},\"memory\":{\"usage\":{\"limit\":8192,"
    "\"usage\":4096}},\"pids\":{\"current\":3}}}";

static void
test_every_method_round_trip(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		json_t *req = json_parse(rows[i].req), *resp = json_parse(rows[i].resp);
		json_t *want = strcmp(rows[i].method, "Stats") == 0 ? json_parse(stats_metrics)
								    : json_incref(resp);
		struct msg_request r;
		struct msg_response rs;
		struct status st;
		uint8_t *buf;
		size_t len;
		unsigned m = msg_pb_method(TASK, rows[i].method);

		CU_ASSERT_NOT_EQUAL(m, 0);
		CU_ASSERT_EQUAL_FATAL(
		    msg_pb_request_encode(TASK, rows[i].method, req, 1500, &buf, &len, &st), 0);
		CU_ASSERT_FALSE(msg_pb_payload_is_json(buf, len));
		CU_ASSERT_EQUAL_FATAL(msg_pb_request_decode(buf, len, &r, &st), 0);
		free(buf);
		CU_ASSERT_STRING_EQUAL(r.service, TASK);
		CU_ASSERT_STRING_EQUAL(r.method, rows[i].method);
		CU_ASSERT_EQUAL(r.codec, MSG_CODEC_PROTOBUF);
		CU_ASSERT_EQUAL(r.pb_method, m);
		CU_ASSERT_EQUAL(r.timeout_nano, 1500);
		CU_ASSERT(tree_equal(r.payload, req));
		msg_request_clear(&r);

		buf = msg_pb_response_encode(m, ST_OK, "", resp, &len);
		CU_ASSERT_EQUAL_FATAL(msg_pb_response_decode(m, buf, len, &rs, &st), 0);
		free(buf);
		CU_ASSERT_EQUAL(rs.code, 0);
		CU_ASSERT_STRING_EQUAL(rs.message, "");
		if (!tree_equal(rs.payload, want))
			CU_FAIL(rows[i].method);
		msg_response_clear(&rs);
		json_decref(req);
		json_decref(resp);
		json_decref(want);
	}
}

/* The State answer built from a flat field list equals the one from a tree. */
static void
test_state_fields(void)
{
	const struct msg_field fields[] = {
	    MSG_STR("id", "c1"),
	    MSG_STR("bundle", "/b"),
	    MSG_INT("pid", 9),
	    MSG_STR("status", "RUNNING"),
	    MSG_STR("stdin", ""),
	    MSG_STR("stdout", NULL),
	    MSG_BOOL("terminal", false),
	    MSG_INT("exit_status", 0),
	    MSG_STR("exited_at", ""),
	    MSG_STR("exec_id", ""),
	};
	unsigned m = msg_pb_method(TASK, "State");
	struct msg_response rs;
	struct status st;
	size_t len;
	uint8_t *buf = msg_pb_response_encode_fields(m, 0, "", fields, ARRAY_SIZE(fields), &len);
	json_t *want =
	    json_parse("{\"id\":\"c1\",\"bundle\":\"/b\",\"pid\":9,\"status\":\"RUNNING\"}");
	Containerd__Task__V2__StateResponse *sr;
	Ttrpc__Response *tr;

	CU_ASSERT_EQUAL_FATAL(msg_pb_response_decode(m, buf, len, &rs, &st), 0);
	CU_ASSERT(tree_equal(rs.payload, want));
	msg_response_clear(&rs);
	/* The enum value on the wire is containerd's RUNNING = 2. */
	tr = ttrpc__response__unpack(NULL, len, buf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tr);
	sr = containerd__task__v2__state_response__unpack(NULL, tr->payload.len, tr->payload.data);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sr);
	CU_ASSERT_EQUAL(sr->status, CONTAINERD__V1__TYPES__STATUS__RUNNING);
	CU_ASSERT_PTR_NULL(sr->exited_at);
	containerd__task__v2__state_response__free_unpacked(sr, NULL);
	ttrpc__response__free_unpacked(tr, NULL);
	free(buf);
	json_decref(want);
}

/* Exact bytes, written by hand from the wire format. */
static void
test_exact_bytes(void)
{
	json_t *pl = json_parse("{\"id\":\"c1\"}");
	/* Request{service=1:"containerd.task.v2.Task", method=2:"State", payload=3:{1:"c1"}} */
	static const uint8_t want[] = {0x0a, 23, 'c', 'o', 'n', 't', 'a', 'i', 'n', 'e', 'r', 'd',
	    '.', 't', 'a', 's', 'k', '.', 'v', '2', '.', 'T', 'a', 's', 'k', 0x12, 5, 'S', 't', 'a',
	    't', 'e', 0x1a, 4, 0x0a, 2, 'c', '1'};
	/* Response{status=1:{code=1:5, message=2:"no"}} */
	static const uint8_t want_resp[] = {0x0a, 6, 0x08, 5, 0x12, 2, 'n', 'o'};
	struct status st;
	uint8_t *buf;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(msg_pb_request_encode(TASK, "State", pl, 0, &buf, &len, &st), 0);
	CU_ASSERT_EQUAL(len, sizeof want);
	CU_ASSERT(len == sizeof want && memcmp(buf, want, len) == 0);
	free(buf);
	buf = msg_pb_response_encode(msg_pb_method(TASK, "State"), 5, "no", NULL, &len);
	CU_ASSERT(len == sizeof want_resp && memcmp(buf, want_resp, len) == 0);
	free(buf);
	json_decref(pl);
}

/* A Request with the given raw payload bytes for method (service: the Task service). */
static uint8_t *
raw_request(const char *method, const void *payload, size_t plen, size_t *len)
{
	Ttrpc__Request rq = TTRPC__REQUEST__INIT;
	uint8_t *buf;

	rq.service = (char *)TASK;
	rq.method = (char *)method;
	rq.payload.data = (uint8_t *)payload;
	rq.payload.len = plen;
	*len = ttrpc__request__get_packed_size(&rq);
	buf = xmalloc(*len);
	ttrpc__request__pack(&rq, buf);
	return buf;
}

/* Decoding fails with INVALID_ARGUMENT and a message containing needle. */
static void
expect_bad(const uint8_t *buf, size_t len, const char *needle)
{
	struct msg_request r;
	struct status st;

	CU_ASSERT_EQUAL(msg_pb_request_decode(buf, len, &r, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT(msg_has(&st, needle));
	CU_ASSERT_PTR_NULL(r.root);
}

static void
expect_bad_payload(const char *method, const void *payload, size_t plen, const char *needle)
{
	size_t len;
	uint8_t *buf = raw_request(method, payload, plen, &len);

	expect_bad(buf, len, needle);
	free(buf);
}

static void
test_bad_envelopes(void)
{
	static const uint8_t trunc_varint[] = {0x0a, 0x80};
	static const uint8_t past_end[] = {0x0a, 0x7f, 'a', 'b', 'c'};
	static const uint8_t wrong_wire[] = {0x08, 0x01}; /* service (a string) as a varint */
	static const uint8_t trunc_key[] = {0x12, 1, 'S', 0xff};
	static const uint8_t group[] = {0x0b, 0x0c};
	static const uint8_t no_service[] = {0x12, 5, 'S', 't', 'a', 't', 'e'};
	static const uint8_t nul_method[] = {0x0a, 1, 'x', 0x12, 3, 'S', 0, 't'};
	static const uint8_t bad_utf8[] = {0x0a, 1, 'x', 0x12, 2, 0xc3, 0x28};

	expect_bad(trunc_varint, sizeof trunc_varint, "request: malformed protobuf ttrpc.Request");
	expect_bad(past_end, sizeof past_end, "malformed protobuf");
	expect_bad(wrong_wire, sizeof wrong_wire, "malformed protobuf");
	expect_bad(trunc_key, sizeof trunc_key, "malformed protobuf");
	expect_bad(group, sizeof group, "malformed protobuf");
	expect_bad(no_service, sizeof no_service, "request.service: missing");
	expect_bad((const uint8_t *)"", 0, "request.service: missing");
	expect_bad(nul_method, sizeof nul_method, "request.method: NUL byte");
	expect_bad(bad_utf8, sizeof bad_utf8, "request.method: invalid UTF-8");
}

static void
test_bad_payloads(void)
{
	static const uint8_t trunc[] = {0x0a, 5, 'c'};
	static const uint8_t wire[] = {0x0d, 1, 2, 3, 4}; /* id as fixed32 */
	static const uint8_t nul[] = {0x0a, 3, 'c', 0, '1'};
	static const uint8_t deep_nul[] = {0x0a, 1, 'c', 0x12, 1, '/', 0x1a, 5, 0x0a, 3, 'a', 0,
	    'b'}; /* rootfs[0].type has a NUL */
	static const uint8_t bad_enum_resp[] = {0x20, 9};
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	Containerd__Task__V2__ExecProcessRequest ex =
	    CONTAINERD__TASK__V2__EXEC_PROCESS_REQUEST__INIT;
	struct msg_response rs;
	struct status st;
	uint8_t pl[256];
	size_t n;

	expect_bad_payload("State", trunc, sizeof trunc,
	    "payload: malformed protobuf containerd.task.v2.StateRequest");
	expect_bad_payload("State", wire, sizeof wire, "payload: malformed protobuf");
	expect_bad_payload("State", nul, sizeof nul, "payload.id: NUL byte in a string");
	expect_bad_payload("Create", deep_nul, sizeof deep_nul, "payload.rootfs.type: NUL byte");

	/* Exec's spec: an Any of the wrong type, then malformed JSON, then a non-object. */
	ex.id = "c1";
	ex.exec_id = "e1";
	ex.spec = &any;
	any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
	any.value.data = (uint8_t *)"{}";
	any.value.len = 2;
	n = containerd__task__v2__exec_process_request__pack(&ex, pl);
	expect_bad_payload("Exec", pl, n, "payload.spec: type URL");
	any.type_url = MSG_PB_URL_PROCESS;
	any.value.data = (uint8_t *)"{\"args\":";
	any.value.len = 8;
	n = containerd__task__v2__exec_process_request__pack(&ex, pl);
	expect_bad_payload("Exec", pl, n, "payload.spec: malformed JSON");
	any.value.data = (uint8_t *)"[1]";
	any.value.len = 3;
	n = containerd__task__v2__exec_process_request__pack(&ex, pl);
	expect_bad_payload("Exec", pl, n, "payload.spec: expected a JSON object");
	any.value.data = (uint8_t *)"{\"a\":1,\"a\":2}";
	any.value.len = 13;
	n = containerd__task__v2__exec_process_request__pack(&ex, pl);
	expect_bad_payload("Exec", pl, n, "duplicate");

	/* A response the client cannot read: an enum value containerd does not define. */
	{
		Ttrpc__Response tr = TTRPC__RESPONSE__INIT;
		uint8_t out[64];
		tr.payload.data = (uint8_t *)bad_enum_resp;
		tr.payload.len = sizeof bad_enum_resp;
		n = ttrpc__response__pack(&tr, out);
		CU_ASSERT_EQUAL(
		    msg_pb_response_decode(msg_pb_method(TASK, "State"), out, n, &rs, &st), -1);
		CU_ASSERT(
		    msg_has(&st, "payload.status: unknown containerd.v1.types.Status value 9"));
	}
}

/* Unknown fields are skipped; an unknown method decodes with an empty payload. */
static void
test_unknown_fields_and_methods(void)
{
	/* StateRequest{id:"c1", 99: varint 5, 100: bytes "zz", exec_id:"e"} */
	static const uint8_t pl[] = {
	    0x0a, 2, 'c', '1', 0x98, 0x06, 5, 0xa2, 0x06, 2, 'z', 'z', 0x12, 1, 'e'};
	json_t *want = json_parse("{\"id\":\"c1\",\"exec_id\":\"e\"}");
	struct msg_request r;
	struct status st;
	uint8_t *buf;
	size_t len;

	buf = raw_request("State", pl, sizeof pl, &len);
	CU_ASSERT_EQUAL_FATAL(msg_pb_request_decode(buf, len, &r, &st), 0);
	CU_ASSERT(tree_equal(r.payload, want));
	msg_request_clear(&r);
	free(buf);

	buf = raw_request("NoSuchMethod", pl, sizeof pl, &len);
	CU_ASSERT_EQUAL_FATAL(msg_pb_request_decode(buf, len, &r, &st), 0);
	CU_ASSERT_EQUAL(r.pb_method, 0);
	CU_ASSERT_EQUAL(json_object_size(r.payload), 0);
	CU_ASSERT_STRING_EQUAL(r.method, "NoSuchMethod");
	msg_request_clear(&r);
	free(buf);
	CU_ASSERT_EQUAL(msg_pb_method(PROTOCOL_EVENTS_SERVICE, "Subscribe"), 0);
	json_decref(want);
}

/* proto3: zero values are absent, so a "required" field is one that is non-zero. */
static void
test_defaults_absent(void)
{
	json_t *pl = json_parse("{\"id\":\"\",\"signal\":0,\"all\":false,\"exec_id\":\"\"}");
	struct msg_request r;
	struct status st;
	uint8_t *buf;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(msg_pb_request_encode(TASK, "Kill", pl, -5, &buf, &len, &st), 0);
	CU_ASSERT_EQUAL_FATAL(msg_pb_request_decode(buf, len, &r, &st), 0);
	CU_ASSERT_EQUAL(json_object_size(r.payload), 0);
	CU_ASSERT_EQUAL(r.timeout_nano, 0); /* negative: none, as the JSON codec */
	msg_request_clear(&r);
	free(buf);
	json_decref(pl);
}

/* Create's options: runtimeoptions are read, any other runtime's options are ignored. */
static void
test_create_options(void)
{
	Containerd__Task__V2__CreateTaskRequest cr =
	    CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	json_t *want = json_parse("{\"id\":\"c1\",\"bundle\":\"/b\"}");
	struct msg_request r;
	struct status st;
	uint8_t pl[128], *buf;
	size_t n, len;

	cr.id = "c1";
	cr.bundle = "/b";
	cr.options = &any;
	any.type_url = "containerd.runc.v1.Options";
	any.value.data = (uint8_t *)"\x08\x01";
	any.value.len = 2;
	n = containerd__task__v2__create_task_request__pack(&cr, pl);
	buf = raw_request("Create", pl, n, &len);
	CU_ASSERT_EQUAL_FATAL(msg_pb_request_decode(buf, len, &r, &st), 0);
	CU_ASSERT(tree_equal(r.payload, want));
	msg_request_clear(&r);
	free(buf);
	/* Google's prefix is accepted on the type URL. */
	any.type_url = "type.googleapis.com/runtimeoptions.v1.Options";
	any.value.data = (uint8_t *)"\x12\x02/c";
	any.value.len = 4;
	n = containerd__task__v2__create_task_request__pack(&cr, pl);
	buf = raw_request("Create", pl, n, &len);
	CU_ASSERT_EQUAL_FATAL(msg_pb_request_decode(buf, len, &r, &st), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
				   json_object_get(r.payload, "options"), "config_path")),
	    "/c");
	msg_request_clear(&r);
	free(buf);
	json_decref(want);
}

/* A result tree that does not fit its message (guest garbage) becomes INTERNAL. */
static void
test_bad_result_is_internal(void)
{
	static const char *const bad[] = {
	    "{\"stats\":{\"cpu\":{\"usage_usec\":\"x\"}}}",
	    "{\"stats\":{\"cpu\":{\"usage_usec\":-1}}}",
	    "{\"stats\":{\"cpu\":{\"usage_usec\":9223372036854775807}}}",
	    "{\"stats\":{\"memory\":[]}}",
	    "{\"stats\":7}",
	};
	unsigned m = msg_pb_method(TASK, "Stats");
	struct msg_response rs;
	struct status st;
	uint8_t *buf;
	size_t len;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		json_t *t = json_parse(bad[i]);
		buf = msg_pb_response_encode(m, 0, "", t, &len);
		CU_ASSERT_EQUAL_FATAL(msg_pb_response_decode(m, buf, len, &rs, &st), 0);
		CU_ASSERT_EQUAL(rs.code, ST_INTERNAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(rs.message, "payload.stats"));
		msg_response_clear(&rs);
		free(buf);
		json_decref(t);
	}
	{
		json_t *t = json_parse("{\"pid\":-1}");
		m = msg_pb_method(TASK, "Start");
		buf = msg_pb_response_encode(m, 0, "", t, &len);
		CU_ASSERT_EQUAL_FATAL(msg_pb_response_decode(m, buf, len, &rs, &st), 0);
		CU_ASSERT_EQUAL(rs.code, ST_INTERNAL);
		CU_ASSERT_STRING_EQUAL(rs.message, "payload.pid: out of range");
		msg_response_clear(&rs);
		free(buf);
		json_decref(t);
	}
	/* A status message that is not UTF-8 is repaired: Go's decoder would refuse it. */
	buf = msg_pb_response_encode(m, ST_NOT_FOUND, "bad \xff byte", NULL, &len);
	CU_ASSERT_EQUAL_FATAL(msg_pb_response_decode(m, buf, len, &rs, &st), 0);
	CU_ASSERT_EQUAL(rs.code, ST_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(rs.message, "bad ? byte");
	msg_response_clear(&rs);
	free(buf);
}

static void
test_time(void)
{
	static const struct {
		const char *text;
		int64_t sec;
		int32_t nsec;
	} good[] = {
	    {"1970-01-01T00:00:00Z", 0, 0},
	    {"2026-11-22T05:50:44.123456789Z", 1795326644, 123456789},
	    {"2000-02-29T12:00:00.5+01:30", 951820200, 500000000},
	    {"0001-01-01T00:00:00Z", -62135596800LL, 0},
	    {"9999-12-31T23:59:59.999999999Z", 253402300799LL, 999999999},
	};
	static const char *const bad[] = {"", "2026-11-22", "2026-11-22T05:50:44",
	    "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-11-22T05:50:44.Z",
	    "2026-11-22T05:50:44.1234567891Z", "2026-11-22T25:00:00Z", "2026-11-22T05:50:44Zjunk",
	    "0000-01-01T00:00:00Z", "2026-11-22 05:50:44Z"};
	char out[40];
	int64_t sec;
	int32_t nsec;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		CU_ASSERT_EQUAL(msg_pb_time_parse(good[i].text, &sec, &nsec), 0);
		CU_ASSERT_EQUAL(sec, good[i].sec);
		CU_ASSERT_EQUAL(nsec, good[i].nsec);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (msg_pb_time_parse(bad[i], &sec, &nsec) != -1)
			CU_FAIL(bad[i]);
	msg_pb_time_format(1795326644, 123456789, out);
	CU_ASSERT_STRING_EQUAL(out, "2026-11-22T05:50:44.123456789Z");
}

static void
test_events(void)
{
	static const struct {
		const char *topic;
		const char *event;
	} ev[] = {
	    {"/tasks/create",
		"{\"container_id\":\"c1\",\"bundle\":\"/b\",\"rootfs\":[{\"type\":\"bind\","
		"\"source\":\"/r\"}],\"io\":{\"stdin\":\"/i\",\"stdout\":\"/o\",\"terminal\":true},"
		"\"pid\":4}"},
	    {"/tasks/start", "{\"container_id\":\"c1\",\"pid\":4}"},
	    {"/tasks/exec-added", "{\"container_id\":\"c1\",\"exec_id\":\"e\"}"},
	    {"/tasks/exec-started", "{\"container_id\":\"c1\",\"exec_id\":\"e\",\"pid\":5}"},
	    {"/tasks/exit", "{\"container_id\":\"c1\",\"id\":\"e\",\"pid\":5,\"exit_status\":2,"
			    "\"exited_at\":\"2026-11-22T05:50:44.000000001Z\"}"},
	    {"/tasks/delete",
		"{\"container_id\":\"c1\",\"id\":\"c1\",\"pid\":4,\"exit_status\":137,"
		"\"exited_at\":\"2026-11-22T05:50:44.000000001Z\"}"},
	    {"/tasks/oom", "{\"container_id\":\"c1\"}"},
	    {"/tasks/paused", "{\"container_id\":\"c1\"}"},
	    {"/tasks/resumed", "{\"container_id\":\"c1\"}"},
	};
	const char *ts = "2026-11-22T05:50:45.000000002Z";
	struct status st;
	uint8_t *buf;
	size_t len;

	for (size_t i = 0; i < ARRAY_SIZE(ev); i++) {
		json_t *e = json_parse(ev[i].event), *back = NULL;
		char *topic = NULL, *t = NULL, *ns = NULL;
		CU_ASSERT_EQUAL_FATAL(
		    msg_pb_event_encode(ev[i].topic, ts, "k8s.io", e, &buf, &len, &st), 0);
		CU_ASSERT_EQUAL_FATAL(
		    msg_pb_event_decode(buf, len, &topic, &t, &ns, &back, &st), 0);
		CU_ASSERT_STRING_EQUAL(topic, ev[i].topic);
		CU_ASSERT_STRING_EQUAL(t, ts);
		CU_ASSERT_STRING_EQUAL(ns, "k8s.io");
		if (!tree_equal(back, e))
			CU_FAIL(ev[i].topic);
		free(buf);
		free(topic);
		free(t);
		free(ns);
		json_decref(back);
		json_decref(e);
	}
	{
		json_t *e = json_parse("{}");
		CU_ASSERT_EQUAL(
		    msg_pb_event_encode("/tasks/bogus", ts, "n", e, &buf, &len, &st), -1);
		CU_ASSERT_EQUAL(st.code, ST_INTERNAL);
		CU_ASSERT_EQUAL(
		    msg_pb_event_encode("/tasks/oom", "now", "n", e, &buf, &len, &st), -1);
		json_decref(e);
	}
}

/* What `vmshim delete` prints and what `start` reads on stdin. */
static void
test_bare_messages(void)
{
	json_t *t = json_parse("{\"pid\":0,\"exit_status\":137,"
			       "\"exited_at\":\"1970-01-01T00:00:01.000000002Z\"}");
	/* DeleteResponse{exit_status=2:137, exited_at=3:{seconds=1:1, nanos=2:2}} */
	static const uint8_t want[] = {0x10, 0x89, 0x01, 0x1a, 4, 0x08, 1, 0x10, 2};
	/* Any{type_url:"runtimeoptions.v1.Options", value: Options{config_path=2:"/c.json"}} */
	static const uint8_t opts[] = {0x0a, 25, 'r', 'u', 'n', 't', 'i', 'm', 'e', 'o', 'p', 't',
	    'i', 'o', 'n', 's', '.', 'v', '1', '.', 'O', 'p', 't', 'i', 'o', 'n', 's', 0x12, 9,
	    0x12, 7, '/', 'c', '.', 'j', 's', 'o', 'n'};
	static const uint8_t other[] = {0x0a, 3, 'x', '.', 'y', 0x12, 1, 0x08};
	struct status st;
	char *path;
	uint8_t *buf;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(
	    msg_pb_message_encode(msg_pb_method(TASK, "Delete"), true, t, &buf, &len, &st), 0);
	CU_ASSERT(len == sizeof want && memcmp(buf, want, len) == 0);
	free(buf);
	json_decref(t);
	CU_ASSERT_EQUAL(msg_pb_runtime_options_decode(opts, sizeof opts, &path, &st), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	CU_ASSERT_STRING_EQUAL(path, "/c.json");
	free(path);
	CU_ASSERT_EQUAL(msg_pb_runtime_options_decode(other, sizeof other, &path, &st), 0);
	CU_ASSERT_PTR_NULL(path);
	CU_ASSERT_EQUAL(msg_pb_runtime_options_decode("", 0, &path, &st), 0);
	CU_ASSERT_PTR_NULL(path);
	CU_ASSERT_EQUAL(msg_pb_runtime_options_decode(opts, 10, &path, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
}

static void
test_codec_choice(void)
{
	CU_ASSERT_TRUE(msg_pb_payload_is_json("{}", 2));
	CU_ASSERT_FALSE(msg_pb_payload_is_json(" {}", 3));
	CU_ASSERT_FALSE(msg_pb_payload_is_json("\x0a", 1));
	CU_ASSERT_FALSE(msg_pb_payload_is_json("", 0));
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"every method round trip", test_every_method_round_trip},
	    {"State from fields", test_state_fields},
	    {"exact bytes", test_exact_bytes},
	    {"bad envelopes", test_bad_envelopes},
	    {"bad payloads", test_bad_payloads},
	    {"unknown fields and methods", test_unknown_fields_and_methods},
	    {"proto3 defaults are absent", test_defaults_absent},
	    {"Create options", test_create_options},
	    {"bad results are INTERNAL", test_bad_result_is_internal},
	    {"timestamps", test_time},
	    {"events", test_events},
	    {"bare messages (delete, start)", test_bare_messages},
	    {"codec choice", test_codec_choice},
	    {NULL, NULL},
	};

	return unit_main("msg-pb", cases);
}
