/*
 * test_msg.c: the JSON envelope codec (common/msg.c) and the status helpers (common/status.c).
 *
 * Round trips of every envelope, the exact bytes the encoders produce, every way a peer can
 * send a malformed or mistyped envelope (each must come back as -1 with INVALID_ARGUMENT and a
 * message naming the problem), and each typed accessor's missing / optional / wrong-type /
 * out-of-range behaviour with its exact message. Single-threaded; every test frees what it
 * decodes so LeakSanitizer checks the codec's ownership rules.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "status.h"
#include "unit.h"
#include "util.h"

/* Parse a JSON literal the tests trust; a broken literal is a bug in the test. */
static json_t *
json_parse(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (j == NULL)
		fatalx("test literal: %s", err.text);
	return j;
}

/* st->msg starts with prefix and contains needle (NULL: no needle). */
static int
msg_matches(const struct status *st, const char *prefix, const char *needle)
{
	if (strncmp(st->msg, prefix, strlen(prefix)) != 0) {
		fprintf(stderr, "\n  message \"%s\" lacks prefix \"%s\"\n", st->msg, prefix);
		return 0;
	}
	if (needle != NULL && strstr(st->msg, needle) == NULL) {
		fprintf(stderr, "\n  message \"%s\" lacks \"%s\"\n", st->msg, needle);
		return 0;
	}
	return 1;
}

/* The decoded struct is all zero: what a failed decode must leave behind. */
static int
all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

/* Decode buf as a request that must fail with exactly `want`. */
static void
request_fails(const char *buf, size_t len, const char *want)
{
	struct msg_request r;
	struct status st;

	status_clear(&st);
	memset(&r, 0xa5, sizeof r);
	CU_ASSERT_EQUAL(msg_request_decode(buf, len, &r, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_STRING_EQUAL(st.msg, want);
	CU_ASSERT_TRUE(all_zero(&r, sizeof r));
	msg_request_clear(&r);
}

/* Decode buf as a request that must fail as malformed JSON, jansson's text holding needle. */
static void
request_malformed(const char *buf, size_t len, const char *needle)
{
	struct msg_request r;
	struct status st;

	status_clear(&st);
	CU_ASSERT_EQUAL(msg_request_decode(buf, len, &r, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_TRUE(msg_matches(&st, "malformed JSON at line ", needle));
	CU_ASSERT_PTR_NULL(r.root);
}

#define REQ_FAILS(lit, want)	   request_fails(lit, sizeof(lit) - 1, want)
#define REQ_MALFORMED(lit, needle) request_malformed(lit, sizeof(lit) - 1, needle)

static void
response_fails(const char *text, const char *want)
{
	struct msg_response r;
	struct status st;

	status_clear(&st);
	memset(&r, 0xa5, sizeof r);
	CU_ASSERT_EQUAL(msg_response_decode(text, strlen(text), &r, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_STRING_EQUAL(st.msg, want);
	CU_ASSERT_TRUE(all_zero(&r, sizeof r));
}

static void
event_fails(const char *text, const char *want)
{
	struct msg_event e;
	struct status st;

	status_clear(&st);
	memset(&e, 0xa5, sizeof e);
	CU_ASSERT_EQUAL(msg_event_decode(text, strlen(text), &e, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_STRING_EQUAL(st.msg, want);
	CU_ASSERT_TRUE(all_zero(&e, sizeof e));
}

static void
test_request_round_trip(void)
{
	cleanup_json json_t *payload = json_parse(
	    "{\"id\":\"c1\",\"rootfs\":[{\"type\":\"block\",\"options\":[\"ro\"]}],\"n\":7}");
	cleanup_free char *buf = NULL;
	struct msg_request r;
	struct status st;
	size_t len = 0;

	buf = msg_request_encode("containerd.task.v2.Task", "Create", payload, 1500000000, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(len, strlen(buf));
	/* Borrowed: the encoder dropped the reference it took. */
	CU_ASSERT_EQUAL(payload->refcount, 1);

	status_clear(&st);
	CU_ASSERT_EQUAL_FATAL(msg_request_decode(buf, len, &r, &st), 0);
	CU_ASSERT_EQUAL(st.code, ST_OK);
	CU_ASSERT_PTR_NOT_NULL(r.root);
	CU_ASSERT_STRING_EQUAL(r.service, "containerd.task.v2.Task");
	CU_ASSERT_STRING_EQUAL(r.method, "Create");
	CU_ASSERT_EQUAL(r.timeout_nano, 1500000000);
	CU_ASSERT_TRUE(json_equal(r.payload, payload));
	CU_ASSERT_PTR_NOT_EQUAL(r.payload, payload);
	CU_ASSERT_TRUE(json_is_object(r.metadata));
	CU_ASSERT_EQUAL(json_object_size(r.metadata), 0);
	msg_request_clear(&r);
	CU_ASSERT_PTR_NULL(r.root);
	CU_ASSERT_PTR_NULL(r.payload);
	/* Clearing twice is harmless. */
	msg_request_clear(&r);
}

static void
test_request_defaults(void)
{
	static const char with_nulls[] =
	    "{\"service\":\"s\",\"method\":\"m\",\"payload\":null,\"timeout_nano\":null,"
	    "\"metadata\":null,\"future_field\":[1,2]}";
	static const char bare[] = "{\"service\":\"s\",\"method\":\"m\"}";
	/* A negative timeout (a Go client whose deadline passed) means none, as in Go ttrpc. */
	static const char negative[] = "{\"service\":\"s\",\"method\":\"m\",\"timeout_nano\":-1}";
	const char *cases[] = {bare, with_nulls, negative};
	struct msg_request r;
	struct status st;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		status_clear(&st);
		CU_ASSERT_EQUAL_FATAL(msg_request_decode(cases[i], strlen(cases[i]), &r, &st), 0);
		CU_ASSERT_STRING_EQUAL(r.service, "s");
		CU_ASSERT_STRING_EQUAL(r.method, "m");
		CU_ASSERT_TRUE(json_is_object(r.payload));
		CU_ASSERT_EQUAL(json_object_size(r.payload), 0);
		/* The {} lives inside root, so clearing the request frees it. */
		CU_ASSERT_PTR_EQUAL(json_object_get(r.root, "payload"), r.payload);
		CU_ASSERT_EQUAL(r.timeout_nano, 0);
		CU_ASSERT_PTR_NULL(r.metadata);
		msg_request_clear(&r);
	}
}

static void
test_response_round_trip(void)
{
	cleanup_json json_t *payload = json_parse("{\"pid\":4242,\"exited_at\":\"x\"}");
	cleanup_free char *buf = NULL;
	cleanup_free char *buf2 = NULL;
	struct msg_response r;
	struct status st;
	size_t len = 0;

	buf = msg_response_encode(ST_NOT_FOUND, "container c1: not found", payload, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(len, strlen(buf));
	CU_ASSERT_EQUAL(payload->refcount, 1);
	status_clear(&st);
	CU_ASSERT_EQUAL_FATAL(msg_response_decode(buf, len, &r, &st), 0);
	CU_ASSERT_EQUAL(r.code, ST_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(r.message, "container c1: not found");
	CU_ASSERT_TRUE(json_equal(r.payload, payload));
	msg_response_clear(&r);
	CU_ASSERT_PTR_NULL(r.root);

	/* Absent message and payload decode as "" and {}. */
	static const char minimal[] = "{\"status\":{\"code\":16}}";
	CU_ASSERT_EQUAL_FATAL(msg_response_decode(minimal, strlen(minimal), &r, &st), 0);
	CU_ASSERT_EQUAL(r.code, ST_UNAUTHENTICATED);
	CU_ASSERT_STRING_EQUAL(r.message, "");
	CU_ASSERT_TRUE(json_is_object(r.payload));
	CU_ASSERT_EQUAL(json_object_size(r.payload), 0);
	CU_ASSERT_PTR_EQUAL(json_object_get(r.root, "payload"), r.payload);
	msg_response_clear(&r);

	/* Every valid code survives the trip. */
	for (int code = 0; code <= 16; code++) {
		free(buf2);
		buf2 = msg_response_encode(code, NULL, NULL, &len);
		CU_ASSERT_EQUAL_FATAL(msg_response_decode(buf2, len, &r, &st), 0);
		CU_ASSERT_EQUAL(r.code, code);
		CU_ASSERT_STRING_EQUAL(r.message, "");
		msg_response_clear(&r);
	}
}

static void
test_response_bad_utf8_message(void)
{
	/* A status message cut inside a multi-byte character, plus stray bytes. */
	static const char bad[] = "caf\xc3\xa9 \xff ok \xe2\x82";
	cleanup_free char *buf = NULL;
	struct msg_response r;
	struct status st;
	size_t len = 0;

	buf = msg_response_encode(ST_INTERNAL, bad, NULL, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_STRING_EQUAL(buf,
	    "{\"status\":{\"code\":13,\"message\":\"caf\xc3\xa9 \xef\xbf\xbd ok "
	    "\xef\xbf\xbd\xef\xbf\xbd\"},\"payload\":{}}");
	CU_ASSERT_EQUAL_FATAL(msg_response_decode(buf, len, &r, &st), 0);
	CU_ASSERT_STRING_EQUAL(r.message, "caf\xc3\xa9 \xef\xbf\xbd ok \xef\xbf\xbd\xef\xbf\xbd");
	msg_response_clear(&r);

	/* RFC 3629 edges: each byte of an ill-formed sequence becomes one U+FFFD. */
	static const struct {
		const char *in, *out;
	} edges[] = {
	    {"\xe0\xa0\x80|\xed\x9f\xbf|\xf0\x90\x80\x80|\xf4\x8f\xbf\xbf",
		"\xe0\xa0\x80|\xed\x9f\xbf|\xf0\x90\x80\x80|\xf4\x8f\xbf\xbf"},
	    {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},		      /* overlong '/' */
	    {"\xc1\xbf", "\xef\xbf\xbd\xef\xbf\xbd"},		      /* overlong */
	    {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong NUL */
	    {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
	    {"\xf0\x8f\xbf\xbf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong */
	    {"\xf4\x90\x80\x80",
		"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
	    {"\xf5\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	    {"a\x80-", "a\xef\xbf\xbd-"},
	    {"\xf0\x9f\x98", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* truncated emoji */
	};
	for (size_t i = 0; i < ARRAY_SIZE(edges); i++) {
		cleanup_free char *b = msg_response_encode(ST_UNKNOWN, edges[i].in, NULL, &len);

		CU_ASSERT_EQUAL_FATAL(msg_response_decode(b, len, &r, &st), 0);
		CU_ASSERT_STRING_EQUAL(r.message, edges[i].out);
		msg_response_clear(&r);
	}
}

static void
test_event_round_trip(void)
{
	cleanup_json json_t *ev = json_parse(
	    "{\"container_id\":\"c1\",\"pid\":10,\"exit_status\":137,\"exited_at\":\"t\"}");
	cleanup_free char *buf = NULL;
	struct msg_event e;
	struct status st;
	size_t len = 0;

	buf = msg_event_encode("/tasks/exit", "2026-11-22T05:50:44.123456789Z", ev, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(len, strlen(buf));
	CU_ASSERT_EQUAL(ev->refcount, 1);
	status_clear(&st);
	CU_ASSERT_EQUAL_FATAL(msg_event_decode(buf, len, &e, &st), 0);
	CU_ASSERT_STRING_EQUAL(e.topic, "/tasks/exit");
	CU_ASSERT_STRING_EQUAL(e.timestamp, "2026-11-22T05:50:44.123456789Z");
	CU_ASSERT_TRUE(json_equal(e.event, ev));
	msg_event_clear(&e);
	CU_ASSERT_PTR_NULL(e.root);
}

static void
test_encode_exact_bytes(void)
{
	cleanup_json json_t *payload = json_parse("{\"id\":\"c1\",\"all\":true,\"signal\":9}");
	char *buf;
	size_t len = 0;

	buf = msg_request_encode("containerd.task.v2.Task", "Kill", payload, 0, &len);
	CU_ASSERT_STRING_EQUAL(buf, "{\"service\":\"containerd.task.v2.Task\",\"method\":\"Kill\","
				    "\"payload\":{\"id\":\"c1\",\"all\":true,\"signal\":9},"
				    "\"timeout_nano\":0,\"metadata\":{}}");
	CU_ASSERT_EQUAL(len, strlen(buf));
	free(buf);

	buf = msg_request_encode("a", "b", NULL, 9223372036854775807LL, &len);
	CU_ASSERT_STRING_EQUAL(buf, "{\"service\":\"a\",\"method\":\"b\",\"payload\":{},"
				    "\"timeout_nano\":9223372036854775807,\"metadata\":{}}");
	CU_ASSERT_EQUAL(len, strlen(buf));
	free(buf);

	buf = msg_response_encode(ST_OK, "", payload, &len);
	CU_ASSERT_STRING_EQUAL(buf, "{\"status\":{\"code\":0,\"message\":\"\"},"
				    "\"payload\":{\"id\":\"c1\",\"all\":true,\"signal\":9}}");
	CU_ASSERT_EQUAL(len, strlen(buf));
	free(buf);

	/* Quotes, backslashes and control characters are escaped; UTF-8 passes through. */
	buf = msg_response_encode(ST_INVALID_ARGUMENT, "bad \"id\"\\\n\x01 \xc3\xa9", NULL, &len);
	CU_ASSERT_STRING_EQUAL(buf, "{\"status\":{\"code\":3,\"message\":"
				    "\"bad \\\"id\\\"\\\\\\n\\u0001 \xc3\xa9\"},\"payload\":{}}");
	CU_ASSERT_EQUAL(len, strlen(buf));
	free(buf);

	buf = msg_event_encode("/tasks/oom", "2026-01-02T03:04:05.000000006Z", NULL, &len);
	CU_ASSERT_STRING_EQUAL(buf, "{\"topic\":\"/tasks/oom\",\"timestamp\":"
				    "\"2026-01-02T03:04:05.000000006Z\",\"event\":{}}");
	CU_ASSERT_EQUAL(len, strlen(buf));
	free(buf);
}

static void
test_malformed_json(void)
{
	static const char nul_in_string[] = "{\"service\":\"s\0x\",\"method\":\"m\"}";
	static const char nul_after[] = "{\"service\":\"s\",\"method\":\"m\"}\0";
	static const char nul_before[] = "\0{\"service\":\"s\",\"method\":\"m\"}";
	static const char nul_line3[] = "{\n\"service\":\"s\",\n\"m\0\":1}";

	/* Truncated, at several depths. */
	REQ_MALFORMED("{\"service\":\"s\",\"method\":\"m\"", NULL);
	REQ_MALFORMED("{\"service\":\"s", "premature end of input");
	REQ_MALFORMED("{", NULL);
	REQ_MALFORMED("", NULL);
	request_malformed(NULL, 0, NULL);
	/* Trailing garbage, including a second object. */
	REQ_MALFORMED("{\"service\":\"s\",\"method\":\"m\"} x", "end of file expected");
	REQ_MALFORMED("{\"service\":\"s\",\"method\":\"m\"}{}", "end of file expected");
	/* Syntax errors, reported where they are. */
	REQ_MALFORMED("{\"service\":\"s\",,\"method\":\"m\"}", NULL);
	REQ_MALFORMED("{\n\"service\": 's'}", NULL);
	REQ_MALFORMED("{\"a\":1,}", NULL);
	{
		struct msg_request r;
		struct status st;
		static const char two_lines[] = "{\"service\":\"s\",\n\"method\":}";

		CU_ASSERT_EQUAL(msg_request_decode(two_lines, strlen(two_lines), &r, &st), -1);
		CU_ASSERT_TRUE(msg_matches(&st, "malformed JSON at line 2 column ", NULL));
	}
	/* Embedded NUL bytes, raw and escaped. */
	request_fails(nul_in_string, sizeof nul_in_string - 1,
	    "malformed JSON at line 1 column 14: embedded NUL byte");
	request_fails(nul_after, sizeof nul_after - 1,
	    "malformed JSON at line 1 column 29: embedded NUL byte");
	request_fails(nul_before, sizeof nul_before - 1,
	    "malformed JSON at line 1 column 1: embedded NUL byte");
	request_fails(nul_line3, sizeof nul_line3 - 1,
	    "malformed JSON at line 3 column 3: embedded NUL byte");
	REQ_MALFORMED("{\"service\":\"s\\u0000x\",\"method\":\"m\"}", "\\u0000 is not allowed");
	/* Invalid UTF-8: a stray byte, an overlong '/', a surrogate, a truncated sequence. */
	REQ_MALFORMED("{\"service\":\"\xff\",\"method\":\"m\"}", "unable to decode byte 0xff");
	REQ_MALFORMED("{\"service\":\"\xc0\xaf\",\"method\":\"m\"}", "unable to decode byte");
	REQ_MALFORMED("{\"service\":\"\xed\xa0\x80\",\"method\":\"m\"}", NULL);
	REQ_MALFORMED("{\"service\":\"\xe2\x82\",\"method\":\"m\"}", NULL);
	REQ_MALFORMED("{\"service\":\"s\",\"method\":\"m\",\"x\xff\":1}", NULL);
	/* Duplicate keys, at the top level and inside the payload. */
	REQ_MALFORMED(
	    "{\"service\":\"s\",\"method\":\"m\",\"service\":\"t\"}", "duplicate object key");
	REQ_MALFORMED(
	    "{\"service\":\"s\",\"method\":\"m\",\"payload\":{\"id\":\"a\",\"id\":\"b\"}}",
	    "duplicate object key");
	/* The same parser guards responses and events. */
	{
		struct msg_response r;
		struct msg_event e;
		struct status st;

		CU_ASSERT_EQUAL(msg_response_decode("{\"status\":", 10, &r, &st), -1);
		CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
		CU_ASSERT_TRUE(msg_matches(&st, "malformed JSON at line 1 column ", NULL));
		CU_ASSERT_EQUAL(
		    msg_event_decode("{\"topic\":\"a\",\"topic\":\"b\"}", 25, &e, &st), -1);
		CU_ASSERT_TRUE(
		    msg_matches(&st, "malformed JSON at line 1 column ", "duplicate object key"));
	}
}

static void
test_not_an_object(void)
{
	REQ_FAILS("[{\"service\":\"s\",\"method\":\"m\"}]", "request: expected a JSON object");
	REQ_FAILS("[]", "request: expected a JSON object");
	REQ_FAILS("42", "request: expected a JSON object");
	REQ_FAILS("\"service\"", "request: expected a JSON object");
	REQ_FAILS("null", "request: expected a JSON object");
	REQ_FAILS("true", "request: expected a JSON object");
	response_fails("[]", "response: expected a JSON object");
	event_fails("1.5", "event: expected a JSON object");
}

static void
test_request_envelope_types(void)
{
	REQ_FAILS("{\"method\":\"m\"}", "request.service: missing");
	REQ_FAILS("{\"service\":null,\"method\":\"m\"}", "request.service: missing");
	REQ_FAILS("{\"service\":5,\"method\":\"m\"}", "request.service: expected string");
	REQ_FAILS("{\"service\":[\"s\"],\"method\":\"m\"}", "request.service: expected string");
	REQ_FAILS(
	    "{\"service\":\"\",\"method\":\"m\"}", "request.service: expected a non-empty string");
	REQ_FAILS("{\"service\":\"s\"}", "request.method: missing");
	REQ_FAILS("{\"service\":\"s\",\"method\":true}", "request.method: expected string");
	REQ_FAILS(
	    "{\"service\":\"s\",\"method\":\"\"}", "request.method: expected a non-empty string");
	REQ_FAILS("{\"service\":\"s\",\"method\":\"m\",\"payload\":[]}",
	    "request.payload: expected object");
	REQ_FAILS("{\"service\":\"s\",\"method\":\"m\",\"payload\":\"{}\"}",
	    "request.payload: expected object");
	REQ_FAILS("{\"service\":\"s\",\"method\":\"m\",\"timeout_nano\":\"5\"}",
	    "request.timeout_nano: expected integer");
	REQ_FAILS("{\"service\":\"s\",\"method\":\"m\",\"timeout_nano\":1.5}",
	    "request.timeout_nano: expected integer");
	REQ_FAILS("{\"service\":\"s\",\"method\":\"m\",\"metadata\":[]}",
	    "request.metadata: expected object");
	/* Beyond int64: jansson refuses to parse it at all. */
	REQ_MALFORMED(
	    "{\"service\":\"s\",\"method\":\"m\",\"timeout_nano\":9223372036854775808}", "too big");
}

static void
test_response_envelope_types(void)
{
	response_fails("{}", "response.status: missing");
	response_fails("{\"status\":null}", "response.status: missing");
	response_fails("{\"status\":0}", "response.status: expected object");
	response_fails("{\"status\":{}}", "response.status.code: missing");
	response_fails("{\"status\":{\"code\":\"0\"}}", "response.status.code: expected integer");
	response_fails("{\"status\":{\"code\":0.0}}", "response.status.code: expected integer");
	response_fails("{\"status\":{\"code\":17}}", "response.status.code: out of range (0..16)");
	response_fails("{\"status\":{\"code\":-1}}", "response.status.code: out of range (0..16)");
	response_fails(
	    "{\"status\":{\"code\":4294967299}}", "response.status.code: out of range (0..16)");
	response_fails(
	    "{\"status\":{\"code\":0,\"message\":5}}", "response.status.message: expected string");
	response_fails(
	    "{\"status\":{\"code\":0},\"payload\":[]}", "response.payload: expected object");
}

static void
test_event_envelope_types(void)
{
	event_fails("{\"timestamp\":\"t\",\"event\":{}}", "event.topic: missing");
	event_fails(
	    "{\"topic\":1,\"timestamp\":\"t\",\"event\":{}}", "event.topic: expected string");
	event_fails("{\"topic\":\"\",\"timestamp\":\"t\",\"event\":{}}",
	    "event.topic: expected a non-empty string");
	event_fails("{\"topic\":\"/t\",\"event\":{}}", "event.timestamp: missing");
	event_fails(
	    "{\"topic\":\"/t\",\"timestamp\":{},\"event\":{}}", "event.timestamp: expected string");
	event_fails("{\"topic\":\"/t\",\"timestamp\":\"t\"}", "event.event: missing");
	event_fails(
	    "{\"topic\":\"/t\",\"timestamp\":\"t\",\"event\":[]}", "event.event: expected object");
}

static const char fields[] = "{\"s\":\"str\",\"empty\":\"\",\"t\":true,\"f\":false,\"i\":42,"
			     "\"zero\":0,\"neg\":-1,\"max32\":4294967295,\"big\":4294967296,"
			     "\"min64\":-9223372036854775808,\"max64\":9223372036854775807,"
			     "\"r\":1.0,\"o\":{\"k\":1},\"a\":[1],\"n\":null}";

/* Run one accessor call, expect failure with INVALID_ARGUMENT and exactly `want`. */
#define EXPECT_ERR(call, want)                                                                     \
	do {                                                                                       \
		status_clear(&st);                                                                 \
		CU_ASSERT_EQUAL(call, -1);                                                         \
		CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);                                     \
		CU_ASSERT_STRING_EQUAL(st.msg, want);                                              \
	} while (0)

static void
test_get_string(void)
{
	cleanup_json json_t *o = json_parse(fields);
	const char *sentinel = "untouched";
	const char *s = sentinel;
	struct status st;

	status_clear(&st);
	CU_ASSERT_EQUAL(msg_get_string(o, "payload", "s", true, &s, &st), 0);
	CU_ASSERT_STRING_EQUAL(s, "str");
	CU_ASSERT_PTR_EQUAL(s, json_string_value(json_object_get(o, "s")));
	CU_ASSERT_EQUAL(msg_get_string(o, "payload", "empty", true, &s, &st), 0);
	CU_ASSERT_STRING_EQUAL(s, "");
	/* Optional and missing (or null): 0, *out untouched, no error. */
	s = sentinel;
	CU_ASSERT_EQUAL(msg_get_string(o, "payload", "id", false, &s, &st), 0);
	CU_ASSERT_PTR_EQUAL(s, sentinel);
	CU_ASSERT_EQUAL(msg_get_string(o, "payload", "n", false, &s, &st), 0);
	CU_ASSERT_PTR_EQUAL(s, sentinel);
	CU_ASSERT_EQUAL(st.code, ST_OK);
	EXPECT_ERR(msg_get_string(o, "payload", "id", true, &s, &st), "payload.id: missing");
	EXPECT_ERR(msg_get_string(o, "payload", "n", true, &s, &st), "payload.n: missing");
	EXPECT_ERR(msg_get_string(o, "payload", "i", true, &s, &st), "payload.i: expected string");
	EXPECT_ERR(msg_get_string(o, "payload", "t", false, &s, &st), "payload.t: expected string");
	EXPECT_ERR(msg_get_string(o, "payload", "o", true, &s, &st), "payload.o: expected string");
	EXPECT_ERR(msg_get_string(o, "payload", "a", true, &s, &st), "payload.a: expected string");
	CU_ASSERT_PTR_EQUAL(s, sentinel);
}

static void
test_get_bool(void)
{
	cleanup_json json_t *o = json_parse(fields);
	struct status st;
	bool b = false;

	status_clear(&st);
	CU_ASSERT_EQUAL(msg_get_bool(o, "payload", "t", true, &b, &st), 0);
	CU_ASSERT_TRUE(b);
	CU_ASSERT_EQUAL(msg_get_bool(o, "payload", "f", true, &b, &st), 0);
	CU_ASSERT_FALSE(b);
	b = true;
	CU_ASSERT_EQUAL(msg_get_bool(o, "payload", "terminal", false, &b, &st), 0);
	CU_ASSERT_TRUE(b);
	CU_ASSERT_EQUAL(msg_get_bool(o, "payload", "n", false, &b, &st), 0);
	CU_ASSERT_TRUE(b);
	EXPECT_ERR(
	    msg_get_bool(o, "payload", "terminal", true, &b, &st), "payload.terminal: missing");
	EXPECT_ERR(msg_get_bool(o, "payload", "i", true, &b, &st), "payload.i: expected boolean");
	EXPECT_ERR(
	    msg_get_bool(o, "payload", "zero", false, &b, &st), "payload.zero: expected boolean");
	EXPECT_ERR(msg_get_bool(o, "payload", "s", true, &b, &st), "payload.s: expected boolean");
	CU_ASSERT_TRUE(b);
}

static void
test_get_u32(void)
{
	cleanup_json json_t *o = json_parse(fields);
	struct status st;
	uint32_t v = 7;

	status_clear(&st);
	CU_ASSERT_EQUAL(msg_get_u32(o, "payload", "i", true, &v, &st), 0);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(msg_get_u32(o, "payload", "zero", true, &v, &st), 0);
	CU_ASSERT_EQUAL(v, 0);
	CU_ASSERT_EQUAL(msg_get_u32(o, "payload", "max32", true, &v, &st), 0);
	CU_ASSERT_EQUAL(v, 4294967295u);
	v = 7;
	CU_ASSERT_EQUAL(msg_get_u32(o, "payload", "signal", false, &v, &st), 0);
	CU_ASSERT_EQUAL(v, 7);
	EXPECT_ERR(msg_get_u32(o, "payload", "signal", true, &v, &st), "payload.signal: missing");
	EXPECT_ERR(msg_get_u32(o, "payload", "n", true, &v, &st), "payload.n: missing");
	EXPECT_ERR(msg_get_u32(o, "payload", "big", true, &v, &st),
	    "payload.big: out of range (0..4294967295)");
	EXPECT_ERR(msg_get_u32(o, "payload", "neg", false, &v, &st),
	    "payload.neg: out of range (0..4294967295)");
	EXPECT_ERR(msg_get_u32(o, "payload", "min64", true, &v, &st),
	    "payload.min64: out of range (0..4294967295)");
	EXPECT_ERR(msg_get_u32(o, "payload", "max64", true, &v, &st),
	    "payload.max64: out of range (0..4294967295)");
	EXPECT_ERR(msg_get_u32(o, "payload", "r", true, &v, &st), "payload.r: expected integer");
	EXPECT_ERR(msg_get_u32(o, "payload", "s", true, &v, &st), "payload.s: expected integer");
	EXPECT_ERR(msg_get_u32(o, "payload", "t", true, &v, &st), "payload.t: expected integer");
	CU_ASSERT_EQUAL(v, 7);
}

static void
test_get_i64(void)
{
	cleanup_json json_t *o = json_parse(fields);
	struct status st;
	int64_t v = 7;

	status_clear(&st);
	CU_ASSERT_EQUAL(msg_get_i64(o, "payload", "neg", true, &v, &st), 0);
	CU_ASSERT_EQUAL(v, -1);
	CU_ASSERT_EQUAL(msg_get_i64(o, "payload", "min64", true, &v, &st), 0);
	CU_ASSERT_EQUAL(v, INT64_MIN);
	CU_ASSERT_EQUAL(msg_get_i64(o, "payload", "max64", true, &v, &st), 0);
	CU_ASSERT_EQUAL(v, INT64_MAX);
	CU_ASSERT_EQUAL(msg_get_i64(o, "payload", "big", true, &v, &st), 0);
	CU_ASSERT_EQUAL(v, 4294967296LL);
	v = 7;
	CU_ASSERT_EQUAL(msg_get_i64(o, "payload", "exit_status", false, &v, &st), 0);
	CU_ASSERT_EQUAL(v, 7);
	EXPECT_ERR(msg_get_i64(o, "payload", "exit_status", true, &v, &st),
	    "payload.exit_status: missing");
	EXPECT_ERR(msg_get_i64(o, "payload", "r", true, &v, &st), "payload.r: expected integer");
	EXPECT_ERR(msg_get_i64(o, "payload", "f", false, &v, &st), "payload.f: expected integer");
	EXPECT_ERR(msg_get_i64(o, "payload", "a", true, &v, &st), "payload.a: expected integer");
	CU_ASSERT_EQUAL(v, 7);
}

static void
test_get_object_array(void)
{
	cleanup_json json_t *o = json_parse(fields);
	json_t *sentinel = json_null();
	json_t *v = sentinel;
	struct status st;

	status_clear(&st);
	CU_ASSERT_EQUAL(msg_get_object(o, "payload", "o", true, &v, &st), 0);
	CU_ASSERT_PTR_EQUAL(v, json_object_get(o, "o"));
	CU_ASSERT_EQUAL(msg_get_array(o, "payload", "a", true, &v, &st), 0);
	CU_ASSERT_PTR_EQUAL(v, json_object_get(o, "a"));
	/* Borrowed: no reference was taken. */
	CU_ASSERT_EQUAL(v->refcount, 1);
	v = sentinel;
	CU_ASSERT_EQUAL(msg_get_object(o, "payload", "spec", false, &v, &st), 0);
	CU_ASSERT_EQUAL(msg_get_array(o, "payload", "rootfs", false, &v, &st), 0);
	CU_ASSERT_EQUAL(msg_get_array(o, "payload", "n", false, &v, &st), 0);
	CU_ASSERT_PTR_EQUAL(v, sentinel);
	EXPECT_ERR(msg_get_object(o, "payload", "spec", true, &v, &st), "payload.spec: missing");
	EXPECT_ERR(msg_get_array(o, "payload", "rootfs", true, &v, &st), "payload.rootfs: missing");
	EXPECT_ERR(msg_get_object(o, "payload", "a", true, &v, &st), "payload.a: expected object");
	EXPECT_ERR(msg_get_object(o, "payload", "s", false, &v, &st), "payload.s: expected object");
	EXPECT_ERR(msg_get_array(o, "payload", "o", true, &v, &st), "payload.o: expected array");
	EXPECT_ERR(msg_get_array(o, "payload", "s", false, &v, &st), "payload.s: expected array");
	CU_ASSERT_PTR_EQUAL(v, sentinel);
}

static void
test_get_on_non_object(void)
{
	cleanup_json json_t *rootfs = json_parse("[\"not an object\",{\"type\":\"block\"}]");
	const char *s = NULL;
	struct status st;

	/* An array element that should have been an object is named by `where`. */
	EXPECT_ERR(
	    msg_get_string(json_array_get(rootfs, 0), "payload.rootfs[0]", "type", true, &s, &st),
	    "payload.rootfs[0]: expected object");
	status_clear(&st);
	CU_ASSERT_EQUAL(
	    msg_get_string(json_array_get(rootfs, 1), "payload.rootfs[1]", "type", true, &s, &st),
	    0);
	CU_ASSERT_STRING_EQUAL(s, "block");
	EXPECT_ERR(
	    msg_get_string(json_array_get(rootfs, 1), "payload.rootfs[1]", "source", true, &s, &st),
	    "payload.rootfs[1].source: missing");
	/* A NULL object (e.g. absent metadata) has every field missing. */
	s = "kept";
	CU_ASSERT_EQUAL(msg_get_string(NULL, "request.metadata", "k", false, &s, &st), 0);
	CU_ASSERT_STRING_EQUAL(s, "kept");
	EXPECT_ERR(msg_get_string(NULL, "request.metadata", "k", true, &s, &st),
	    "request.metadata.k: missing");
	/* An empty `where` leaves just the key. */
	EXPECT_ERR(msg_get_string(rootfs, "", "k", true, &s, &st), "expected object");
	EXPECT_ERR(msg_get_bool(json_array_get(rootfs, 1), "", "type", true, &(bool){false}, &st),
	    "type: expected boolean");
}

static void
test_cleanup_json(void)
{
	json_t *kept = json_object();

	{
		cleanup_json json_t *ref = json_incref(kept);
		cleanup_json json_t *none = NULL;

		CU_ASSERT_EQUAL(kept->refcount, 2);
		(void)ref;
		(void)none;
	}
	CU_ASSERT_EQUAL(kept->refcount, 1);
	msg_json_decrefp(&kept);
	CU_ASSERT_PTR_NULL(kept);
	msg_json_decrefp(&kept);
}

static void
test_status_codes(void)
{
	static const char *const names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
	    "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
	int code;

	CU_ASSERT_EQUAL(ARRAY_SIZE(names), 17);
	for (code = 0; code < 17; code++) {
		CU_ASSERT_STRING_EQUAL(status_code_name(code), names[code]);
		CU_ASSERT_EQUAL(status_code_parse(names[code]), code);
	}
	CU_ASSERT_EQUAL(ST_INVALID_ARGUMENT, 3);
	CU_ASSERT_EQUAL(ST_UNAVAILABLE, 14);
	CU_ASSERT_STRING_EQUAL(status_code_name(17), "UNKNOWN_CODE");
	CU_ASSERT_STRING_EQUAL(status_code_name(-1), "UNKNOWN_CODE");
	CU_ASSERT_STRING_EQUAL(status_code_name(1000), "UNKNOWN_CODE");
	CU_ASSERT_EQUAL(status_code_parse("UNKNOWN_CODE"), -1);
	CU_ASSERT_EQUAL(status_code_parse("BOGUS"), -1);
	CU_ASSERT_EQUAL(status_code_parse("not_found"), -1);
	CU_ASSERT_EQUAL(status_code_parse("NOT_FOUND "), -1);
	CU_ASSERT_EQUAL(status_code_parse(""), -1);
}

static void
test_status_format(void)
{
	char longer[STATUS_MSG_MAX * 2];
	struct status st;

	status_clear(&st);
	CU_ASSERT_EQUAL(st.code, ST_OK);
	CU_ASSERT_STRING_EQUAL(st.msg, "");

	CU_ASSERT_EQUAL(status_set(&st, ST_NOT_FOUND, "container %s", "c1"), -1);
	CU_ASSERT_EQUAL(st.code, ST_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(st.msg, "container c1");

	CU_ASSERT_EQUAL(status_wrap(&st, "Delete %s", "c1"), -1);
	CU_ASSERT_EQUAL(st.code, ST_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(st.msg, "Delete c1: container c1");
	CU_ASSERT_EQUAL(status_wrap(&st, "rpc"), -1);
	CU_ASSERT_STRING_EQUAL(st.msg, "rpc: Delete c1: container c1");

	CU_ASSERT_EQUAL(status_errno(&st, ST_INTERNAL, ENOENT, "open %s", "/x"), -1);
	CU_ASSERT_EQUAL(st.code, ST_INTERNAL);
	CU_ASSERT_STRING_EQUAL(st.msg, "open /x: No such file or directory");
	CU_ASSERT_EQUAL(status_errno(&st, ST_UNAVAILABLE, -ECONNREFUSED, "dial %s", "agent"), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_STRING_EQUAL(st.msg, "dial agent: Connection refused");
	CU_ASSERT_EQUAL(status_wrap(&st, "Create c2"), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_STRING_EQUAL(st.msg, "Create c2: dial agent: Connection refused");

	/* Too long: truncated to fit, still NUL-terminated, never overflowing. */
	memset(longer, 'x', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	CU_ASSERT_EQUAL(status_set(&st, ST_INTERNAL, "%s", longer), -1);
	CU_ASSERT_EQUAL(strlen(st.msg), STATUS_MSG_MAX - 1);
	CU_ASSERT_EQUAL(status_wrap(&st, "ctx"), -1);
	CU_ASSERT_EQUAL(strlen(st.msg), STATUS_MSG_MAX - 1);
	CU_ASSERT_EQUAL(strncmp(st.msg, "ctx: xxx", 8), 0);
	CU_ASSERT_EQUAL(status_errno(&st, ST_INTERNAL, EIO, "%s", longer), -1);
	CU_ASSERT_EQUAL(strlen(st.msg), STATUS_MSG_MAX - 1);

	/* A status message truncated mid-character still encodes as valid UTF-8. */
	memset(longer, 'x', STATUS_MSG_MAX - 2);
	strcpy(longer + STATUS_MSG_MAX - 2, "\xc3\xa9 tail");
	status_set(&st, ST_INTERNAL, "%s", longer);
	{
		cleanup_free char *buf = NULL;
		struct msg_response r;
		size_t len;

		CU_ASSERT_EQUAL(st.msg[STATUS_MSG_MAX - 2], '\xc3');
		buf = msg_response_encode(st.code, st.msg, NULL, &len);
		CU_ASSERT_EQUAL_FATAL(msg_response_decode(buf, len, &r, &st), 0);
		CU_ASSERT_EQUAL(strlen(r.message), STATUS_MSG_MAX - 2 + 3);
		CU_ASSERT_STRING_EQUAL(r.message + STATUS_MSG_MAX - 2, "\xef\xbf\xbd");
		msg_response_clear(&r);
	}
}

/* A deterministic pseudo-random generator (xorshift), so a failing tree can be replayed. */
static uint64_t gen_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
gen_next(uint32_t bound)
{
	gen_state ^= gen_state << 13;
	gen_state ^= gen_state >> 7;
	gen_state ^= gen_state << 17;
	return (uint32_t)(gen_state % bound);
}

/* Text mixing plain ASCII, every escape class, control bytes, DEL and multi-byte UTF-8. */
static void
gen_text(char *out, size_t cap)
{
	static const char *const pieces[] = {"a", "Z", "0", " ", "\"", "\\", "/", "\b", "\f", "\n",
	    "\r", "\t", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x80\xa8", "\xf0\x9f\x98\x80",
	    "path/to/x", "{}[],:"};
	size_t n = gen_next(12), used = 0, k;

	out[0] = '\0';
	while (n-- > 0) {
		const char *pc = pieces[gen_next(sizeof pieces / sizeof pieces[0])];

		k = strlen(pc);
		if (used + k + 1 > cap)
			break;
		memcpy(out + used, pc, k + 1);
		used += k;
	}
}

/* A random tree of every JSON type but real, up to `depth` levels of containers. */
static json_t *
gen_tree(int depth)
{
	static const json_int_t ints[] = {
	    0, 1, -1, 9, 10, -10, 123456789, INT32_MIN, INT32_MAX, INT64_MIN, INT64_MAX};
	char text[128];
	json_t *v;
	uint32_t i, n;

	switch (gen_next(depth > 0 ? 8 : 6)) {
	case 0:
		gen_text(text, sizeof text);
		return json_string(text);
	case 1:
		return json_integer(ints[gen_next(sizeof ints / sizeof ints[0])]);
	case 2:
		return json_true();
	case 3:
		return json_false();
	case 4:
		return json_null();
	case 5:
		/* A string with embedded NUL bytes (json_stringn keeps them). */
		return json_stringn("a\0b", 3);
	case 6:
		v = json_object();
		n = gen_next(5);
		for (i = 0; i < n; i++) {
			gen_text(text, sizeof text);
			json_object_set_new(v, text, gen_tree(depth - 1));
		}
		return v;
	default:
		v = json_array();
		n = gen_next(5);
		for (i = 0; i < n; i++)
			json_array_append_new(v, gen_tree(depth - 1));
		return v;
	}
}

/* The encoder writes exactly what jansson's json_dumps(JSON_COMPACT) writes, on 2,000 trees. */
static void
test_dump_matches_jansson(void)
{
	unsigned i, mismatches = 0;

	for (i = 0; i < 2000; i++) {
		cleanup_json json_t *tree = gen_tree(4);
		char *ours, *theirs;
		size_t len;

		ours = msg_dump_json(tree, &len);
		theirs = json_dumps(tree, JSON_COMPACT | JSON_ENCODE_ANY);
		CU_ASSERT_PTR_NOT_NULL_FATAL(theirs);
		if (len != strlen(theirs) || memcmp(ours, theirs, len) != 0) {
			if (mismatches++ == 0)
				fprintf(stderr, "\n  tree %u:\n  ours   %s\n  jansson %s\n", i,
				    ours, theirs);
		}
		CU_ASSERT_EQUAL(ours[len], '\0');
		free(ours);
		free(theirs);
	}
	CU_ASSERT_EQUAL(mismatches, 0);

	/* A key with a NUL byte in it (json_object_setn) is written whole, as jansson does. */
	{
		cleanup_json json_t *o = json_object();
		char *ours, *theirs;
		size_t len;

		CU_ASSERT_EQUAL_FATAL(json_object_setn_new(o, "ke\0y", 4, json_true()), 0);
		ours = msg_dump_json(o, &len);
		theirs = json_dumps(o, JSON_COMPACT);
		CU_ASSERT_STRING_EQUAL(ours, "{\"ke\\u0000y\":true}");
		CU_ASSERT_STRING_EQUAL(ours, theirs);
		free(ours);
		free(theirs);
	}

	/* Reals keep jansson's own formatting. */
	{
		cleanup_json json_t *r = json_pack("[f,f,f]", 0.5, 1.0, -2.5e300);
		char *ours, *theirs;
		size_t len;

		ours = msg_dump_json(r, &len);
		theirs = json_dumps(r, JSON_COMPACT);
		CU_ASSERT_STRING_EQUAL(ours, theirs);
		free(ours);
		free(theirs);
	}
}

/* A response built from fields is the response built from the same tree, byte for byte. */
static void
test_response_fields(void)
{
	const struct msg_field flat[] = {
	    MSG_STR("id", "c1"),
	    MSG_STR("bundle", "/run/b \"q\"\\\n"),
	    MSG_INT("pid", 4242),
	    MSG_BOOL("terminal", true),
	    MSG_BOOL("paused", false),
	    MSG_INT("exit_status", -1),
	    MSG_STR("none", NULL),
	    MSG_STR("bad", "a\x80z"),
	};
	cleanup_json json_t *tree = json_pack("{s:s,s:s,s:i,s:b,s:b,s:i,s:s,s:s}", "id", "c1",
	    "bundle", "/run/b \"q\"\\\n", "pid", 4242, "terminal", 1, "paused", 0, "exit_status",
	    -1, "none", "", "bad", "a\xef\xbf\xbdz");
	struct msg_response r;
	struct status st;
	char *a, *b;
	size_t alen, blen;

	CU_ASSERT_PTR_NOT_NULL_FATAL(tree);
	a = msg_response_encode_fields(ST_OK, "", flat, sizeof flat / sizeof flat[0], &alen);
	b = msg_response_encode(ST_OK, "", tree, &blen);
	CU_ASSERT_EQUAL(alen, blen);
	CU_ASSERT_STRING_EQUAL(a, b);
	/* And it decodes back to the same values. */
	CU_ASSERT_EQUAL_FATAL(msg_response_decode(a, alen, &r, &st), 0);
	CU_ASSERT_TRUE(json_equal(r.payload, tree));
	msg_response_clear(&r);
	free(a);
	free(b);

	a = msg_response_encode_fields(ST_NOT_FOUND, "no \xff", NULL, 0, &alen);
	CU_ASSERT_STRING_EQUAL(
	    a, "{\"status\":{\"code\":5,\"message\":\"no \xef\xbf\xbd\"},\"payload\":{}}");
	CU_ASSERT_EQUAL(alen, strlen(a));
	free(a);
}

static const struct unit_case cases[] = {
    {"request round trip", test_request_round_trip},
    {"request defaults", test_request_defaults},
    {"response round trip", test_response_round_trip},
    {"response bad UTF-8 message", test_response_bad_utf8_message},
    {"event round trip", test_event_round_trip},
    {"encode exact bytes", test_encode_exact_bytes},
    {"encoder matches json_dumps", test_dump_matches_jansson},
    {"response from fields", test_response_fields},
    {"malformed JSON", test_malformed_json},
    {"top level not an object", test_not_an_object},
    {"request envelope types", test_request_envelope_types},
    {"response envelope types", test_response_envelope_types},
    {"event envelope types", test_event_envelope_types},
    {"msg_get_string", test_get_string},
    {"msg_get_bool", test_get_bool},
    {"msg_get_u32", test_get_u32},
    {"msg_get_i64", test_get_i64},
    {"msg_get_object / msg_get_array", test_get_object_array},
    {"accessors on a non-object", test_get_on_non_object},
    {"cleanup_json", test_cleanup_json},
    {"status code names", test_status_codes},
    {"status formatting", test_status_format},
    {NULL, NULL},
};

int
main(void)
{
	return unit_main("msg", cases);
}
