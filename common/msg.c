/*
 * msg.c: the JSON codec for the request, response and event envelopes, on jansson.
 *
 * Decoding parses the bytes of one frame into a jansson tree that the decoded struct owns
 * through `root`; every other pointer in the struct (strings, payload, metadata) is borrowed
 * from that tree and dies with msg_*_clear(). A payload that was absent or null is replaced
 * inside the tree by a fresh {} (owned by root as well), so handlers always get an object.
 * The parser is strict: duplicate keys, raw NUL bytes, "\u0000" escapes and invalid UTF-8 are
 * rejected, as is anything but an object at the top level; unknown envelope keys are ignored
 * so a newer peer can add fields. Every decode error is INVALID_ARGUMENT with a message naming
 * the field ("request.method: expected string").
 *
 * Encoding writes compact JSON text, in insertion order, into one malloc'd, NUL-terminated
 * buffer the caller frees (msg_buf_*, below: the same bytes json_dumps would give, several
 * times cheaper). Requests and events build a small envelope tree around the borrowed payload
 * (we take our own reference and drop it with the tree); responses write their envelope
 * directly around the payload tree, or around a flat msg_field list with no tree at all
 * (State's hot path). Keys come out in docs/CONTRACT.md 4's order and a request always carries
 * "metadata":{} as in its example. Encoders never fail: text that can carry bytes from
 * elsewhere (a status message truncated mid-character by status_set) is repaired to valid
 * UTF-8 with U+FFFD, and arguments that break the envelope contract (a NULL service, a
 * non-object payload, a status code outside 0..16, a negative timeout) are programming errors.
 *
 * No state and no locks: safe from any thread as long as one json_t tree is not shared between
 * threads while its reference count changes.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "util.h"

/* Highest status code accepted on the wire (ST_UNAUTHENTICATED). */
#define MSG_CODE_MAX ST_UNAUTHENTICATED

void
msg_json_decrefp(json_t **j)
{
	if (*j != NULL) {
		json_decref(*j);
		*j = NULL;
	}
}

/* Set INVALID_ARGUMENT "<where>.<key>: <what>" (just "<key>: ..." when where is empty). */
static int
msg_field_error(struct status *st, const char *where, const char *key, const char *what)
{
	if (where == NULL || *where == '\0')
		return status_set(st, ST_INVALID_ARGUMENT, "%s: %s", key, what);
	return status_set(st, ST_INVALID_ARGUMENT, "%s.%s: %s", where, key, what);
}

/* The JSON kinds the accessors check for, with the name their type errors use. */
enum msg_kind { MSG_STRING, MSG_BOOLEAN, MSG_INTEGER, MSG_OBJECT, MSG_ARRAY };

static bool
msg_kind_is(const json_t *v, enum msg_kind kind)
{
	switch (kind) {
	case MSG_STRING:
		return json_is_string(v);
	case MSG_BOOLEAN:
		return json_is_boolean(v);
	case MSG_INTEGER:
		return json_is_integer(v);
	case MSG_OBJECT:
		return json_is_object(v);
	case MSG_ARRAY:
		return json_is_array(v);
	}
	fatalx("msg_kind_is: kind %d", (int)kind);
}

static const char *const msg_kind_errors[] = {
    [MSG_STRING] = "expected string",
    [MSG_BOOLEAN] = "expected boolean",
    [MSG_INTEGER] = "expected integer",
    [MSG_OBJECT] = "expected object",
    [MSG_ARRAY] = "expected array",
};

/*
 * The lookup, null/missing and type check behind every msg_get_*. Returns 1 with *val set when
 * key is present, not null and of `kind`; 0 when missing (an error if required); -1 on error.
 * A NULL obj is an absent object, so all its fields are missing; any other non-object is an
 * error naming `where`.
 */
static int
msg_get_field(json_t *obj, const char *where, const char *key, bool required, enum msg_kind kind,
    json_t **val, struct status *st)
{
	json_t *v = NULL;

	if (obj != NULL && !json_is_object(obj)) {
		if (where == NULL || *where == '\0')
			return status_set(st, ST_INVALID_ARGUMENT, "expected object");
		return status_set(st, ST_INVALID_ARGUMENT, "%s: expected object", where);
	}
	if (obj != NULL)
		v = json_object_get(obj, key);
	if (v == NULL || json_is_null(v)) {
		if (required)
			return msg_field_error(st, where, key, "missing");
		return 0;
	}
	if (!msg_kind_is(v, kind))
		return msg_field_error(st, where, key, msg_kind_errors[kind]);
	*val = v;
	return 1;
}

int
msg_get_string(json_t *obj, const char *where, const char *key, bool required, const char **out,
    struct status *st)
{
	json_t *v;
	int r;

	if ((r = msg_get_field(obj, where, key, required, MSG_STRING, &v, st)) <= 0)
		return r;
	*out = json_string_value(v);
	return 0;
}

int
msg_get_bool(
    json_t *obj, const char *where, const char *key, bool required, bool *out, struct status *st)
{
	json_t *v;
	int r;

	if ((r = msg_get_field(obj, where, key, required, MSG_BOOLEAN, &v, st)) <= 0)
		return r;
	*out = json_is_true(v);
	return 0;
}

int
msg_get_u32(json_t *obj, const char *where, const char *key, bool required, uint32_t *out,
    struct status *st)
{
	json_int_t n;
	json_t *v;
	int r;

	if ((r = msg_get_field(obj, where, key, required, MSG_INTEGER, &v, st)) <= 0)
		return r;
	n = json_integer_value(v);
	if (n < 0 || n > (json_int_t)UINT32_MAX)
		return msg_field_error(st, where, key, "out of range (0..4294967295)");
	*out = (uint32_t)n;
	return 0;
}

int
msg_get_i64(
    json_t *obj, const char *where, const char *key, bool required, int64_t *out, struct status *st)
{
	json_t *v;
	int r;

	if ((r = msg_get_field(obj, where, key, required, MSG_INTEGER, &v, st)) <= 0)
		return r;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

int
msg_get_object(
    json_t *obj, const char *where, const char *key, bool required, json_t **out, struct status *st)
{
	json_t *v;
	int r;

	if ((r = msg_get_field(obj, where, key, required, MSG_OBJECT, &v, st)) <= 0)
		return r;
	*out = v;
	return 0;
}

int
msg_get_array(
    json_t *obj, const char *where, const char *key, bool required, json_t **out, struct status *st)
{
	json_t *v;
	int r;

	if ((r = msg_get_field(obj, where, key, required, MSG_ARRAY, &v, st)) <= 0)
		return r;
	*out = v;
	return 0;
}

/* Report the raw NUL byte at nul, with a 1-based line and byte column like jansson's. */
static void
msg_nul_error(const char *buf, const char *nul, struct status *st)
{
	const char *line_start = buf, *p;
	int line = 1;

	for (p = buf; p < nul; p++)
		if (*p == '\n') {
			line++;
			line_start = p + 1;
		}
	status_set(st, ST_INVALID_ARGUMENT,
	    "malformed JSON at line %d column %td: embedded NUL byte", line, nul - line_start + 1);
}

/*
 * Parse one envelope strictly and check that it is an object. Returns the new root (owned by
 * the caller) or NULL with INVALID_ARGUMENT "malformed JSON at line L column C: ..." or
 * "<what>: expected a JSON object". JSON_DECODE_ANY lets a top-level scalar parse so it gets
 * the second, clearer message instead of jansson's.
 */
static json_t *
msg_parse(const void *buf, size_t len, const char *what, struct status *st)
{
	const char *nul;
	json_error_t err;
	json_t *root;

	if (len == 0)
		buf = "";
	/* Jansson rejects raw NULs too, but with confusing text ("end of file expected"). */
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		msg_nul_error((const char *)buf, nul, st);
		return NULL;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (root == NULL) {
		status_set(st, ST_INVALID_ARGUMENT, "malformed JSON at line %d column %d: %s",
		    err.line, err.column, err.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		status_set(st, ST_INVALID_ARGUMENT, "%s: expected a JSON object", what);
		return NULL;
	}
	return root;
}

/* Read required string `key` of root, which must not be empty. */
static int
msg_get_name(json_t *root, const char *where, const char *key, const char **out, struct status *st)
{
	const char *s = NULL;

	if (msg_get_string(root, where, key, true, &s, st) < 0)
		return -1;
	if (*s == '\0')
		return msg_field_error(st, where, key, "expected a non-empty string");
	*out = s;
	return 0;
}

/*
 * Read optional object `key` of root; when absent or null, store a new {} under key so that
 * root owns it too. The result is borrowed from root.
 */
static int
msg_get_payload(json_t *root, const char *where, const char *key, json_t **out, struct status *st)
{
	json_t *p = NULL;

	if (msg_get_object(root, where, key, false, &p, st) < 0)
		return -1;
	if (p == NULL) {
		p = json_object();
		if (p == NULL || json_object_set_new(root, key, p) < 0)
			fatalx("out of memory building an empty %s.%s", where, key);
	}
	*out = p;
	return 0;
}

int
msg_request_decode(const void *buf, size_t len, struct msg_request *out, struct status *st)
{
	cleanup_json json_t *root = NULL;
	struct msg_request r;

	memset(out, 0, sizeof *out);
	memset(&r, 0, sizeof r);
	if ((root = msg_parse(buf, len, "request", st)) == NULL)
		return -1;
	if (msg_get_name(root, "request", "service", &r.service, st) < 0 ||
	    msg_get_name(root, "request", "method", &r.method, st) < 0 ||
	    msg_get_payload(root, "request", "payload", &r.payload, st) < 0 ||
	    msg_get_i64(root, "request", "timeout_nano", false, &r.timeout_nano, st) < 0 ||
	    msg_get_object(root, "request", "metadata", false, &r.metadata, st) < 0)
		return -1;
	/* As containerd's Go ttrpc server does: a negative timeout means none. */
	if (r.timeout_nano < 0)
		r.timeout_nano = 0;
	r.root = steal_ptr(&root);
	*out = r;
	return 0;
}

int
msg_response_decode(const void *buf, size_t len, struct msg_response *out, struct status *st)
{
	cleanup_json json_t *root = NULL;
	struct msg_response r;
	json_t *status = NULL;
	int64_t code = 0;

	memset(out, 0, sizeof *out);
	memset(&r, 0, sizeof r);
	r.message = "";
	if ((root = msg_parse(buf, len, "response", st)) == NULL)
		return -1;
	if (msg_get_object(root, "response", "status", true, &status, st) < 0 ||
	    msg_get_i64(status, "response.status", "code", true, &code, st) < 0 ||
	    msg_get_string(status, "response.status", "message", false, &r.message, st) < 0 ||
	    msg_get_payload(root, "response", "payload", &r.payload, st) < 0)
		return -1;
	if (code < 0 || code > MSG_CODE_MAX)
		return msg_field_error(st, "response.status", "code", "out of range (0..16)");
	r.code = (int)code;
	r.root = steal_ptr(&root);
	*out = r;
	return 0;
}

int
msg_event_decode(const void *buf, size_t len, struct msg_event *out, struct status *st)
{
	cleanup_json json_t *root = NULL;
	struct msg_event e;

	memset(out, 0, sizeof *out);
	memset(&e, 0, sizeof e);
	if ((root = msg_parse(buf, len, "event", st)) == NULL)
		return -1;
	if (msg_get_name(root, "event", "topic", &e.topic, st) < 0 ||
	    msg_get_string(root, "event", "timestamp", true, &e.timestamp, st) < 0 ||
	    msg_get_object(root, "event", "event", true, &e.event, st) < 0)
		return -1;
	e.root = steal_ptr(&root);
	*out = e;
	return 0;
}

void
msg_request_clear(struct msg_request *r)
{
	json_decref(r->root);
	memset(r, 0, sizeof *r);
}

void
msg_response_clear(struct msg_response *r)
{
	json_decref(r->root);
	memset(r, 0, sizeof *r);
}

void
msg_event_clear(struct msg_event *e)
{
	json_decref(e->root);
	memset(e, 0, sizeof *e);
}

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF) at the start of s, or 0 if the first byte does not start one.
 */
static size_t
msg_utf8_seq(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * A JSON string holding s; bytes that are not valid UTF-8 become U+FFFD, so text from
 * elsewhere (a truncated status message, a path) never makes an encoder fail.
 */
static json_t *
msg_json_text(const char *s)
{
	cleanup_free char *fixed = NULL;
	const unsigned char *p = (const unsigned char *)s;
	size_t n, used = 0;
	json_t *j;

	if ((j = json_string(s)) != NULL)
		return j;
	/* Each bad byte grows to 3; the NUL terminator stops every sequence check. */
	fixed = xmalloc(strlen(s) * 3 + 1);
	while (*p != '\0') {
		if ((n = msg_utf8_seq(p)) == 0) {
			memcpy(fixed + used, "\xef\xbf\xbd", 3);
			used += 3;
			p++;
		} else {
			memcpy(fixed + used, p, n);
			used += n;
			p += n;
		}
	}
	fixed[used] = '\0';
	if ((j = json_string(fixed)) == NULL)
		fatalx("out of memory building a JSON string");
	return j;
}

/* Store value (stolen) under key in obj; only allocation can fail. */
static void
msg_set(json_t *obj, const char *key, json_t *value)
{
	if (value == NULL || json_object_set_new(obj, key, value) < 0)
		fatalx("out of memory building a message (key %s)", key);
}

/* A new reference to the caller's payload (borrowed), or a new {} for NULL. */
static json_t *
msg_payload_ref(json_t *payload, const char *fn)
{
	if (payload == NULL)
		return json_object();
	if (!json_is_object(payload))
		fatalx("%s: payload is not a JSON object", fn);
	return json_incref(payload);
}

/*
 * The encoder writes JSON text itself into one growing buffer (jansson's json_dump_callback
 * calls back per token and formats a pointer with snprintf for every object it visits: most of
 * a small response's cost). Output is byte for byte what json_dumps(JSON_COMPACT) gives
 * (tests/unit/test_msg.c compares them on generated trees): insertion order, UTF-8 as is, the
 * same escapes, keys with NUL bytes included. Strings are taken as valid UTF-8, which jansson
 * checks when they are made (nothing here uses its _nocheck constructors). Reals, which no
 * envelope field uses, go through jansson to keep its formatting.
 */
struct msg_buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Room for `more` bytes and a NUL. */
static void
msg_buf_reserve(struct msg_buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 256;
	while (b->len + more + 1 > b->cap)
		b->cap *= 2;
	b->data = xrealloc(b->data, b->cap);
}

static void
msg_buf_put(struct msg_buf *b, const char *s, size_t n)
{
	msg_buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

#define msg_buf_lit(b, lit) msg_buf_put((b), (lit), sizeof(lit) - 1)

/* A JSON string: quoted, with jansson's escapes; `s` is valid UTF-8 of n bytes. */
static void
msg_buf_string(struct msg_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *run = s, *end = s + n;
	char esc[6];

	msg_buf_reserve(b, n + 2);
	b->data[b->len++] = '"';
	for (; s < end; s++) {
		unsigned char c = (unsigned char)*s;
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		msg_buf_put(b, run, (size_t)(s - run));
		run = s + 1;
		esc[0] = '\\';
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			elen = 6;
		}
		msg_buf_put(b, esc, elen);
	}
	msg_buf_put(b, run, (size_t)(end - run));
	msg_buf_lit(b, "\"");
}

static void
msg_buf_int(struct msg_buf *b, json_int_t v)
{
	char digits[24], *p = digits + sizeof digits;
	/* Negate in unsigned arithmetic: -INT64_MIN does not fit. */
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	msg_buf_put(b, p, (size_t)(digits + sizeof digits - p));
}

/* A key's length; jansson >= 2.14 keeps keys with NUL bytes (json_object_setn). */
static size_t
msg_key_len(const char *key)
{
#if JANSSON_VERSION_HEX >= 0x020e00
	return json_object_iter_key_len(json_object_key_to_iter(key));
#else
	return strlen(key);
#endif
}

/* Deeper than any tree the decoder accepts (jansson's parser stops at 2048). */
#define MSG_DUMP_MAX_DEPTH 4096

/* Append v as compact JSON. Trees are ours, so a cycle (endless depth) is a programming error. */
static void
msg_buf_value(struct msg_buf *b, json_t *v, unsigned depth)
{
	const char *key;
	json_t *item;
	size_t i, n;
	char *text;

	if (depth > MSG_DUMP_MAX_DEPTH)
		fatalx("cannot encode a message: nested deeper than %d (circular payload?)",
		    MSG_DUMP_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		msg_buf_lit(b, "{");
		n = 0;
		json_object_foreach (v, key, item) {
			if (n++ > 0)
				msg_buf_lit(b, ",");
			msg_buf_string(b, key, msg_key_len(key));
			msg_buf_lit(b, ":");
			msg_buf_value(b, item, depth + 1);
		}
		msg_buf_lit(b, "}");
		break;
	case JSON_ARRAY:
		msg_buf_lit(b, "[");
		n = json_array_size(v);
		for (i = 0; i < n; i++) {
			if (i > 0)
				msg_buf_lit(b, ",");
			msg_buf_value(b, json_array_get(v, i), depth + 1);
		}
		msg_buf_lit(b, "]");
		break;
	case JSON_STRING:
		msg_buf_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		msg_buf_int(b, json_integer_value(v));
		break;
	case JSON_TRUE:
		msg_buf_lit(b, "true");
		break;
	case JSON_FALSE:
		msg_buf_lit(b, "false");
		break;
	case JSON_NULL:
		msg_buf_lit(b, "null");
		break;
	case JSON_REAL:
		if ((text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)) == NULL)
			fatalx("out of memory encoding a number");
		msg_buf_put(b, text, strlen(text));
		free(text);
		break;
	}
}

static bool
msg_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	for (; *p != '\0'; p += n) {
		if (*p < 0x80)
			n = 1;
		else if ((n = msg_utf8_seq(p)) == 0)
			return false;
	}
	return true;
}

/* A C string as a JSON string; bytes that are not UTF-8 become U+FFFD (msg_json_text). */
static void
msg_buf_text(struct msg_buf *b, const char *s)
{
	cleanup_json json_t *fixed = NULL;

	if (msg_utf8_valid(s)) {
		msg_buf_string(b, s, strlen(s));
		return;
	}
	fixed = msg_json_text(s);
	msg_buf_value(b, fixed, 0);
}

/* The buffer handed to the caller: malloc'd, NUL-terminated past *len. */
static char *
msg_buf_finish(struct msg_buf *b, size_t *len)
{
	msg_buf_reserve(b, 0);
	b->data[b->len] = '\0';
	*len = b->len;
	return b->data;
}

/* Dump root compact in one pass; the result is malloc'd and NUL-terminated past *len. */
static char *
msg_dump(json_t *root, size_t *len)
{
	struct msg_buf b = {NULL, 0, 0};

	msg_buf_value(&b, root, 0);
	return msg_buf_finish(&b, len);
}

char *
msg_dump_json(json_t *value, size_t *len)
{
	if (value == NULL)
		fatalx("msg_dump_json: NULL value");
	return msg_dump(value, len);
}

char *
msg_request_encode(
    const char *service, const char *method, json_t *payload, int64_t timeout_nano, size_t *len)
{
	cleanup_json json_t *root = NULL;

	if (service == NULL || method == NULL || timeout_nano < 0)
		fatalx("msg_request_encode: bad arguments (service %s, method %s, timeout %" PRId64
		       ")",
		    service ? service : "NULL", method ? method : "NULL", timeout_nano);
	if ((root = json_object()) == NULL)
		fatalx("out of memory building a request");
	msg_set(root, "service", msg_json_text(service));
	msg_set(root, "method", msg_json_text(method));
	msg_set(root, "payload", msg_payload_ref(payload, __func__));
	msg_set(root, "timeout_nano", json_integer((json_int_t)timeout_nano));
	msg_set(root, "metadata", json_object());
	return msg_dump(root, len);
}

/* {"status":{"code":N,"message":"..."},"payload": -- the response up to its payload. */
static void
msg_response_head(struct msg_buf *b, int code, const char *message, const char *fn)
{
	if (code < 0 || code > MSG_CODE_MAX)
		fatalx("%s: status code %d outside 0..%d", fn, code, MSG_CODE_MAX);
	msg_buf_lit(b, "{\"status\":{\"code\":");
	msg_buf_int(b, code);
	msg_buf_lit(b, ",\"message\":");
	msg_buf_text(b, message != NULL ? message : "");
	msg_buf_lit(b, "},\"payload\":");
}

char *
msg_response_encode(int code, const char *message, json_t *payload, size_t *len)
{
	struct msg_buf b = {NULL, 0, 0};

	if (payload != NULL && !json_is_object(payload))
		fatalx("%s: payload is not a JSON object", __func__);
	msg_response_head(&b, code, message, __func__);
	if (payload != NULL)
		msg_buf_value(&b, payload, 0);
	else
		msg_buf_lit(&b, "{}");
	msg_buf_lit(&b, "}");
	return msg_buf_finish(&b, len);
}

char *
msg_response_encode_fields(
    int code, const char *message, const struct msg_field *fields, size_t nfields, size_t *len)
{
	struct msg_buf b = {NULL, 0, 0};
	size_t i;

	msg_response_head(&b, code, message, __func__);
	msg_buf_lit(&b, "{");
	for (i = 0; i < nfields; i++) {
		const struct msg_field *f = &fields[i];

		if (i > 0)
			msg_buf_lit(&b, ",");
		msg_buf_string(&b, f->key, strlen(f->key));
		msg_buf_lit(&b, ":");
		switch (f->type) {
		case MSG_FIELD_STRING:
			msg_buf_text(&b, f->str != NULL ? f->str : "");
			break;
		case MSG_FIELD_INT:
			msg_buf_int(&b, f->num);
			break;
		case MSG_FIELD_BOOL:
			if (f->flag)
				msg_buf_lit(&b, "true");
			else
				msg_buf_lit(&b, "false");
			break;
		default:
			fatalx("%s: field %s has unknown type %d", __func__, f->key, (int)f->type);
		}
	}
	msg_buf_lit(&b, "}}");
	return msg_buf_finish(&b, len);
}

char *
msg_event_encode(const char *topic, const char *timestamp, json_t *event, size_t *len)
{
	cleanup_json json_t *root = NULL;

	if (topic == NULL || timestamp == NULL)
		fatalx("msg_event_encode: NULL topic or timestamp");
	if ((root = json_object()) == NULL)
		fatalx("out of memory building an event");
	msg_set(root, "topic", msg_json_text(topic));
	msg_set(root, "timestamp", msg_json_text(timestamp));
	msg_set(root, "event", msg_payload_ref(event, __func__));
	return msg_dump(root, len);
}
