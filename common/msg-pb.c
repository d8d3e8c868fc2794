/*
 * msg-pb.c: the protobuf codec (containerd's ttrpc Request/Response and task.v2 messages).
 *
 * The C structs are protoc-c's, generated at build time from the .proto files in common/proto. The
 * conversion between a message and the codec-neutral json_t tree is generic: it walks the
 * message descriptor's fields (proto3 names, types, offsets), so one table per direction
 * (msg_pb_methods: a Task method's request and response messages; msg_pb_topics: an event
 * topic's message) is all a method or an event needs. What is not generic is named in
 * msg_pb_any_rules: the Any fields and what they carry.
 *
 * Decoding (peer bytes -> tree): protobuf-c's unpacker checks the wire format (truncated
 * varints, lengths past the end, wire types that do not match a known field); a pre-walk
 * (msg_pb_wire_check) adds what it does not check, NUL bytes inside strings, and every string
 * must be valid UTF-8 (as proto3 requires and jansson enforces). Unknown fields are skipped.
 * Every error is INVALID_ARGUMENT naming the field where it can be named.
 *
 * Encoding (tree -> bytes): the message is built in an arena (msg_pb_arena: every block it
 * allocates is freed at once after packing); strings point into the tree, which outlives the
 * packing. A tree that does not fit (a wrong type, a number out of range: only guest data
 * can cause it) is an error with the caller's code (INTERNAL for responses).
 *
 * No state and no locks; any thread.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.pb-c.h"
#include "forward.pb-c.h"
#include "metrics.pb-c.h"
#include "msg-pb.h"
#include "runtimeoptions.pb-c.h"
#include "shim.pb-c.h"
#include "ttrpc.pb-c.h"
#include "util.h"
#include "wkt.pb-c.h"

/* Nesting deeper than our messages ever go is refused by the wire pre-walk. */
#define MSG_PB_MAX_DEPTH 16
/* Where-paths in error messages ("payload.rootfs[3].options[1]") are cut at this length. */
#define MSG_PB_WHERE_LEN 160

/* A Task method: its name and the request and response messages. */
struct msg_pb_method {
	const char *name;
	const ProtobufCMessageDescriptor *req;
	const ProtobufCMessageDescriptor *resp;
};

/* Index 0 is "no method": a request this codec has no messages for. */
static const struct msg_pb_method msg_pb_methods[] = {
    {NULL, NULL, NULL},
    {"Create", &containerd__task__v2__create_task_request__descriptor,
	&containerd__task__v2__create_task_response__descriptor},
    {"Start", &containerd__task__v2__start_request__descriptor,
	&containerd__task__v2__start_response__descriptor},
    {"Exec", &containerd__task__v2__exec_process_request__descriptor,
	&google__protobuf__empty__descriptor},
    {"State", &containerd__task__v2__state_request__descriptor,
	&containerd__task__v2__state_response__descriptor},
    {"Pids", &containerd__task__v2__pids_request__descriptor,
	&containerd__task__v2__pids_response__descriptor},
    {"Kill", &containerd__task__v2__kill_request__descriptor, &google__protobuf__empty__descriptor},
    {"Wait", &containerd__task__v2__wait_request__descriptor,
	&containerd__task__v2__wait_response__descriptor},
    {"CloseIO", &containerd__task__v2__close_iorequest__descriptor,
	&google__protobuf__empty__descriptor},
    {"ResizePty", &containerd__task__v2__resize_pty_request__descriptor,
	&google__protobuf__empty__descriptor},
    {"Pause", &containerd__task__v2__pause_request__descriptor,
	&google__protobuf__empty__descriptor},
    {"Resume", &containerd__task__v2__resume_request__descriptor,
	&google__protobuf__empty__descriptor},
    {"Update", &containerd__task__v2__update_task_request__descriptor,
	&google__protobuf__empty__descriptor},
    {"Stats", &containerd__task__v2__stats_request__descriptor,
	&containerd__task__v2__stats_response__descriptor},
    {"Delete", &containerd__task__v2__delete_request__descriptor,
	&containerd__task__v2__delete_response__descriptor},
    {"Connect", &containerd__task__v2__connect_request__descriptor,
	&containerd__task__v2__connect_response__descriptor},
    {"Shutdown", &containerd__task__v2__shutdown_request__descriptor,
	&google__protobuf__empty__descriptor},
    {"Checkpoint", &containerd__task__v2__checkpoint_task_request__descriptor,
	&google__protobuf__empty__descriptor},
};

/* An event topic and its containerd.events message (the Any's type URL is its name). */
static const struct msg_pb_topic {
	const char *topic;
	const ProtobufCMessageDescriptor *msg;
} msg_pb_topics[] = {
    {"/tasks/create", &containerd__events__task_create__descriptor},
    {"/tasks/start", &containerd__events__task_start__descriptor},
    {"/tasks/delete", &containerd__events__task_delete__descriptor},
    {"/tasks/exit", &containerd__events__task_exit__descriptor},
    {"/tasks/oom", &containerd__events__task_oom__descriptor},
    {"/tasks/exec-added", &containerd__events__task_exec_added__descriptor},
    {"/tasks/exec-started", &containerd__events__task_exec_started__descriptor},
    {"/tasks/paused", &containerd__events__task_paused__descriptor},
    {"/tasks/resumed", &containerd__events__task_resumed__descriptor},
};

/* What an Any field carries. */
enum msg_pb_any_kind {
	MSG_PB_ANY_JSON,    /* a JSON object (OCI runtime-spec types) */
	MSG_PB_ANY_OPTIONS, /* runtimeoptions.v1.Options */
	MSG_PB_ANY_METRICS, /* cgroups v1 Metrics; the tree side is the guest's stats object */
};

static const struct msg_pb_any_rule {
	const ProtobufCMessageDescriptor *msg;
	const char *field;
	const char *url;
	enum msg_pb_any_kind kind;
	bool other_urls_ignored; /* else another type URL is an error */
} msg_pb_any_rules[] = {
    {&containerd__task__v2__exec_process_request__descriptor, "spec", MSG_PB_URL_PROCESS,
	MSG_PB_ANY_JSON, false},
    {&containerd__task__v2__update_task_request__descriptor, "resources", MSG_PB_URL_RESOURCES,
	MSG_PB_ANY_JSON, false},
    /* Runtime options of another shape (a runc shim's) are not ours to read. */
    {&containerd__task__v2__create_task_request__descriptor, "options", MSG_PB_URL_RUNTIME_OPTIONS,
	MSG_PB_ANY_OPTIONS, true},
    {&containerd__task__v2__stats_response__descriptor, "stats", MSG_PB_URL_METRICS,
	MSG_PB_ANY_METRICS, false},
};

/* ---- small helpers ---- */

bool
msg_pb_payload_is_json(const void *buf, size_t len)
{
	return len > 0 && *(const uint8_t *)buf == '{';
}

static const struct msg_pb_any_rule *
msg_pb_any_rule(const ProtobufCMessageDescriptor *msg, const char *field)
{
	for (size_t i = 0; i < ARRAY_SIZE(msg_pb_any_rules); i++)
		if (msg_pb_any_rules[i].msg == msg && strcmp(msg_pb_any_rules[i].field, field) == 0)
			return &msg_pb_any_rules[i];
	return NULL;
}

/* A type URL compared without Google's "type.googleapis.com/" prefix, which either may carry. */
static bool
msg_pb_url_is(const char *got, const char *want)
{
	static const char prefix[] = "type.googleapis.com/";

	if (strncmp(got, prefix, sizeof prefix - 1) == 0)
		got += sizeof prefix - 1;
	return strcmp(got, want) == 0;
}

static void
msg_pb_where(char out[MSG_PB_WHERE_LEN], const char *where, const char *name, long index)
{
	if (index >= 0)
		snprintf(out, MSG_PB_WHERE_LEN, "%s.%s[%ld]", where, name, index);
	else
		snprintf(out, MSG_PB_WHERE_LEN, "%s.%s", where, name);
}

static bool
msg_pb_is_map(const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *e = f->descriptor;
	size_t n;

	if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
		return false;
	n = strlen(e->name);
	return e->n_fields == 2 && n > 5 && strcmp(e->name + n - 5, "Entry") == 0 &&
	       strcmp(e->fields[0].name, "key") == 0 && strcmp(e->fields[1].name, "value") == 0 &&
	       e->fields[0].type == PROTOBUF_C_TYPE_STRING &&
	       e->fields[1].type == PROTOBUF_C_TYPE_STRING;
}

static size_t
msg_pb_type_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	}
	fatalx("msg_pb_type_size: type %d", (int)t);
}

/* A copy of s as valid UTF-8: every byte that starts no valid sequence becomes '?'. */
static char *
msg_pb_utf8_repair(const char *s)
{
	char *out = xstrdup(s != NULL ? s : "");
	unsigned char *p = (unsigned char *)out;
	size_t n, i;
	uint32_t cp;

	while (*p != '\0') {
		if (*p < 0x80) {
			p++;
			continue;
		}
		n = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		cp = n == 2 ? (*p & 0x1fu) : n == 3 ? (*p & 0x0fu) : (*p & 0x07u);
		for (i = 1; i < n && (p[i] & 0xc0) == 0x80; i++)
			cp = (cp << 6) | (p[i] & 0x3fu);
		if (n == 0 || i < n || (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
		    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
	return out;
}

/* ---- time ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t
msg_pb_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* Read exactly n decimal digits. */
static bool
msg_pb_digits(const char **s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*s)[i] < '0' || (*s)[i] > '9')
			return false;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return true;
}

int
msg_pb_time_parse(const char *s, int64_t *sec, int32_t *nsec)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, se, oh = 0, om = 0, ns = 0, digits = 0;
	int64_t t;
	int sign = 0;

	if (!msg_pb_digits(&s, 4, &y) || *s++ != '-' || !msg_pb_digits(&s, 2, &mo) || *s++ != '-' ||
	    !msg_pb_digits(&s, 2, &d) || (*s != 'T' && *s != 't'))
		return -1;
	s++;
	if (!msg_pb_digits(&s, 2, &h) || *s++ != ':' || !msg_pb_digits(&s, 2, &mi) || *s++ != ':' ||
	    !msg_pb_digits(&s, 2, &se))
		return -1;
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9') {
			if (digits == 9)
				return -1;
			ns = ns * 10 + (*s++ - '0');
			digits++;
		}
		if (digits == 0)
			return -1;
		for (; digits < 9; digits++)
			ns *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (!msg_pb_digits(&s, 2, &oh) || *s++ != ':' || !msg_pb_digits(&s, 2, &om) ||
		    oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*s != '\0' || y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
	    mi > 59 || se > 60)
		return -1;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -1;
	t = 0;
	if (se == 60) { /* a leap second, as Go reads it: the next second */
		se = 59;
		t = 1;
	}
	t += msg_pb_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*sec = t;
	*nsec = ns;
	return 0;
}

void
msg_pb_time_format(int64_t sec, int32_t nsec, char out[40])
{
	struct timespec ts = {.tv_sec = (time_t)sec, .tv_nsec = nsec};

	time_rfc3339(&ts, out);
}

/* The range of a Timestamp: years 1 to 9999, as google.protobuf.Timestamp defines it. */
static bool
msg_pb_time_valid(int64_t sec, int32_t nsec)
{
	return sec >= -62135596800LL && sec <= 253402300799LL && nsec >= 0 && nsec <= 999999999;
}

/* ---- the wire pre-walk ---- */

/* Read a varint; false when it runs past the end or past 10 bytes. */
static bool
msg_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return true;
		}
	}
	return false;
}

/*
 * Find the NUL bytes in string fields (protobuf-c would cut the string there) and refuse
 * nesting deeper than MSG_PB_MAX_DEPTH. Anything else malformed is left to protobuf-c's
 * unpacker, which runs next: the walk just stops where it cannot go on.
 */
static int
msg_pb_wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
    const char *where, int depth, struct status *st)
{
	const uint8_t *end;
	const ProtobufCFieldDescriptor *f;
	char sub[MSG_PB_WHERE_LEN];
	uint64_t key, n;

	if (len == 0)
		return 0; /* p may be NULL: an absent payload */
	end = p + len;

	if (depth > MSG_PB_MAX_DEPTH)
		return status_set(st, ST_INVALID_ARGUMENT, "%s: nested too deep", where);
	while (p < end) {
		if (!msg_pb_varint(&p, end, &key))
			return 0;
		switch (key & 7) {
		case 0:
			if (!msg_pb_varint(&p, end, &n))
				return 0;
			break;
		case 1:
			if (end - p < 8)
				return 0;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				return 0;
			p += 4;
			break;
		case 2:
			if (!msg_pb_varint(&p, end, &n) || n > (uint64_t)(end - p))
				return 0;
			f = key >> 3 <= UINT32_MAX
				? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
				: NULL;
			if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
			    memchr(p, '\0', (size_t)n) != NULL) {
				msg_pb_where(sub, where, f->name, -1);
				return status_set(
				    st, ST_INVALID_ARGUMENT, "%s: NUL byte in a string", sub);
			}
			if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				msg_pb_where(sub, where, f->name, -1);
				if (msg_pb_wire_check(
					f->descriptor, p, (size_t)n, sub, depth + 1, st) < 0)
					return -1;
			}
			p += n;
			break;
		default:
			return 0; /* groups and invalid wire types: protobuf-c refuses them */
		}
	}
	return 0;
}

/* Unpack a message of type d after the pre-walk; NULL with INVALID_ARGUMENT. */
static ProtobufCMessage *
msg_pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
    const char *where, struct status *st)
{
	ProtobufCMessage *m;

	if (msg_pb_wire_check(d, buf, len, where, 0, st) < 0)
		return NULL;
	m = protobuf_c_message_unpack(d, NULL, len, buf);
	if (m == NULL)
		status_set(st, ST_INVALID_ARGUMENT, "%s: malformed protobuf %s", where, d->name);
	return m;
}

static void
msg_pb_freep(ProtobufCMessage **m)
{
	if (*m != NULL)
		protobuf_c_message_free_unpacked(*m, NULL);
	*m = NULL;
}
#define cleanup_pb __attribute__((cleanup(msg_pb_freep)))

/* ---- message -> tree ---- */

static int msg_pb_to_tree(
    const ProtobufCMessage *m, const char *where, json_t **out, struct status *st);

/* s is valid UTF-8 (what jansson accepts as a string). */
static bool
msg_pb_is_utf8(const char *s)
{
	json_t *j = json_string(s);

	json_decref(j);
	return j != NULL;
}

/* A JSON string from protobuf text; INVALID_ARGUMENT when it is not UTF-8. */
static int
msg_pb_json_string(const char *s, const char *where, json_t **out, struct status *st)
{
	if ((*out = json_string(s)) == NULL)
		return status_set(st, ST_INVALID_ARGUMENT, "%s: invalid UTF-8", where);
	return 0;
}

/* A strict JSON object from an Any's bytes (as the JSON codec parses: no duplicates, no NUL). */
static int
msg_pb_any_json(const ProtobufCBinaryData *v, const char *where, json_t **out, struct status *st)
{
	json_error_t err;
	json_t *j;

	if (v->len == 0 || memchr(v->data, '\0', v->len) != NULL)
		return status_set(st, ST_INVALID_ARGUMENT, "%s: expected a JSON object", where);
	j = json_loadb(
	    (const char *)v->data, v->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (j == NULL)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "%s: malformed JSON at line %d column %d: %s", where, err.line, err.column,
		    err.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return status_set(st, ST_INVALID_ARGUMENT, "%s: expected a JSON object", where);
	}
	*out = j;
	return 0;
}

/* An Any field of `parent` into the tree, by its rule; *out NULL when it is left out. */
static int
msg_pb_any_to_tree(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f,
    const Google__Protobuf__Any *any, const char *where, json_t **out, struct status *st)
{
	const struct msg_pb_any_rule *r = msg_pb_any_rule(parent, f->name);
	const ProtobufCMessageDescriptor *d;
	cleanup_pb ProtobufCMessage *m = NULL;
	char sub[MSG_PB_WHERE_LEN];

	*out = NULL;
	if (r == NULL)
		return 0; /* an Any we have no use for (ProcessInfo.info, Checkpoint options) */
	if ((any->type_url == NULL || *any->type_url == '\0') && any->value.len == 0)
		return 0;
	if (any->type_url == NULL || !msg_pb_url_is(any->type_url, r->url)) {
		if (r->other_urls_ignored)
			return 0;
		if (!msg_pb_is_utf8(any->type_url))
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s.type_url: invalid UTF-8", where);
		return status_set(st, ST_INVALID_ARGUMENT, "%s: type URL \"%.80s\" is not %s",
		    where, any->type_url, r->url);
	}
	if (r->kind == MSG_PB_ANY_JSON)
		return msg_pb_any_json(&any->value, where, out, st);
	d = r->kind == MSG_PB_ANY_OPTIONS ? &runtimeoptions__v1__options__descriptor
					  : &io__containerd__cgroups__v1__metrics__descriptor;
	snprintf(sub, sizeof sub, "%s.value", where);
	if ((m = msg_pb_unpack(d, any->value.data, any->value.len, sub, st)) == NULL)
		return -1;
	return msg_pb_to_tree(m, where, out, st);
}

/*
 * One value of field f (of message type parent) at p into *out. keep_zero: list elements keep
 * their zero values; a singular field's zero value is left out (*out NULL), as proto3 has it.
 */
static int
msg_pb_value_to_json(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f,
    const void *p, bool keep_zero, const char *where, json_t **out, struct status *st)
{
	const ProtobufCEnumValue *ev;
	const ProtobufCMessage *sub;
	const char *s;
	char ts[40];
	int64_t i = 0;
	uint64_t u;

	*out = NULL;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		i = *(const int32_t *)p;
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		i = *(const int64_t *)p;
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		i = *(const uint32_t *)p;
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		u = *(const uint64_t *)p;
		if (u > INT64_MAX)
			return status_set(st, ST_INVALID_ARGUMENT, "%s: out of range", where);
		i = (int64_t)u;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		if (*(const protobuf_c_boolean *)p || keep_zero)
			*out = json_boolean(*(const protobuf_c_boolean *)p);
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
		*out = json_real(*(const float *)p);
		return 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		*out = json_real(*(const double *)p);
		return 0;
	case PROTOBUF_C_TYPE_ENUM:
		i = *(const int *)p;
		if (i == 0 && !keep_zero)
			return 0;
		ev = protobuf_c_enum_descriptor_get_value(f->descriptor, (int)i);
		if (ev == NULL)
			return status_set(st, ST_INVALID_ARGUMENT, "%s: unknown %s value %" PRId64,
			    where, ((const ProtobufCEnumDescriptor *)f->descriptor)->name, i);
		*out = json_string(ev->name);
		return 0;
	case PROTOBUF_C_TYPE_STRING:
		s = *(char *const *)p;
		if (s == NULL || (*s == '\0' && !keep_zero))
			return 0;
		return msg_pb_json_string(s, where, out, st);
	case PROTOBUF_C_TYPE_BYTES:
		return 0; /* no bytes field of ours travels outside an Any */
	case PROTOBUF_C_TYPE_MESSAGE:
		if ((sub = *(ProtobufCMessage *const *)p) == NULL)
			return 0;
		if (sub->descriptor == &google__protobuf__timestamp__descriptor) {
			const Google__Protobuf__Timestamp *t = (const void *)sub;
			if (!msg_pb_time_valid(t->seconds, t->nanos))
				return status_set(
				    st, ST_INVALID_ARGUMENT, "%s: timestamp out of range", where);
			msg_pb_time_format(t->seconds, t->nanos, ts);
			*out = json_string(ts);
			return 0;
		}
		if (sub->descriptor == &google__protobuf__any__descriptor)
			return msg_pb_any_to_tree(parent, f, (const void *)sub, where, out, st);
		return msg_pb_to_tree(sub, where, out, st);
	}
	if (i == 0 && !keep_zero)
		return 0;
	*out = json_integer((json_int_t)i);
	return 0;
}

/* A repeated field: a list, or an object for a map<string, string>. */
static int
msg_pb_repeated_to_json(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
    const char *where, json_t **out, struct status *st)
{
	size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
	const char *arr = *(char *const *)((const char *)m + f->offset);
	size_t size = msg_pb_type_size(f->type);
	char sub[MSG_PB_WHERE_LEN];
	cleanup_json json_t *v = NULL;
	json_t *e;

	*out = NULL;
	if (n == 0)
		return 0;
	if (msg_pb_is_map(f)) {
		v = json_object();
		for (size_t j = 0; j < n; j++) {
			const ProtobufCMessage *entry = ((ProtobufCMessage *const *)arr)[j];
			const ProtobufCMessageDescriptor *ed = entry->descriptor;
			const char *k =
			    *(char *const *)((const char *)entry + ed->fields[0].offset);
			const char *val =
			    *(char *const *)((const char *)entry + ed->fields[1].offset);
			msg_pb_where(sub, where, f->name, (long)j);
			if (msg_pb_json_string(val != NULL ? val : "", sub, &e, st) < 0)
				return -1;
			if (!msg_pb_is_utf8(k != NULL ? k : "")) {
				json_decref(e);
				return status_set(
				    st, ST_INVALID_ARGUMENT, "%s: invalid UTF-8", sub);
			}
			json_object_set_new(v, k != NULL ? k : "", e);
		}
	} else {
		v = json_array();
		for (size_t j = 0; j < n; j++) {
			msg_pb_where(sub, where, f->name, (long)j);
			if (msg_pb_value_to_json(
				m->descriptor, f, arr + j * size, true, sub, &e, st) < 0)
				return -1;
			json_array_append_new(v, e != NULL ? e : json_null());
		}
	}
	*out = steal_ptr(&v);
	return 0;
}

/* Every set field of m, under its proto name, into a new object. */
static int
msg_pb_to_tree(const ProtobufCMessage *m, const char *where, json_t **out, struct status *st)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	cleanup_json json_t *obj = json_object();
	char sub[MSG_PB_WHERE_LEN];
	json_t *v;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		msg_pb_where(sub, where, f->name, -1);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (msg_pb_repeated_to_json(m, f, sub, &v, st) < 0)
				return -1;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
			   !*(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset)) {
			v = NULL;
		} else if (msg_pb_value_to_json(
			       d, f, (const char *)m + f->offset, false, sub, &v, st) < 0) {
			return -1;
		}
		if (v != NULL)
			json_object_set_new(obj, f->name, v);
	}
	*out = steal_ptr(&obj);
	return 0;
}

/* ---- tree -> message ---- */

/* Blocks of one message being built; all freed together once it is packed. */
struct msg_pb_arena {
	void **blocks;
	size_t n, cap;
	int code; /* the status code of a tree that does not fit */
};

static void *
msg_pb_alloc(struct msg_pb_arena *a, size_t size)
{
	void *p = xcalloc(1, size > 0 ? size : 1);

	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->blocks = xrealloc(a->blocks, a->cap * sizeof *a->blocks);
	}
	a->blocks[a->n++] = p;
	return p;
}

static void
msg_pb_arena_free(struct msg_pb_arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->blocks[i]);
	free(a->blocks);
	a->blocks = NULL;
	a->n = a->cap = 0;
}

static int msg_pb_from_tree(const ProtobufCMessageDescriptor *d, json_t *tree, const char *where,
    struct msg_pb_arena *a, ProtobufCMessage **out, struct status *st);

/* Pack m into a new buffer (in the arena when a is not NULL, else the caller's to free). */
static uint8_t *
msg_pb_pack(const ProtobufCMessage *m, struct msg_pb_arena *a, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = a != NULL ? msg_pb_alloc(a, n) : xmalloc(n > 0 ? n : 1);

	if (protobuf_c_message_pack(m, buf) != n)
		fatalx("protobuf_c_message_pack of %s: size mismatch", m->descriptor->name);
	*len = n;
	return buf;
}

/* A non-negative integer of the guest's stats (absent: 0). */
static int
msg_pb_stat(json_t *obj, const char *where, const char *group, const char *key, int64_t *out,
    struct msg_pb_arena *a, struct status *st)
{
	json_t *g = json_object_get(obj, group), *v;

	*out = 0;
	if (g == NULL || json_is_null(g))
		return 0;
	if (!json_is_object(g))
		return status_set(st, a->code, "%s.%s: expected object", where, group);
	v = json_object_get(g, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return status_set(
		    st, a->code, "%s.%s.%s: expected a non-negative integer", where, group, key);
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/* cgroups Metrics from the guest's {cpu:{usage_usec}, memory:{usage_bytes, limit_bytes}, pids}. */
static int
msg_pb_metrics(json_t *stats, const char *where, struct msg_pb_arena *a, ProtobufCBinaryData *out,
    struct status *st)
{
	Io__Containerd__Cgroups__V1__Metrics *m = msg_pb_alloc(a, sizeof *m);
	Io__Containerd__Cgroups__V1__CPUStat *cpu = msg_pb_alloc(a, sizeof *cpu);
	Io__Containerd__Cgroups__V1__CPUUsage *usage = msg_pb_alloc(a, sizeof *usage);
	Io__Containerd__Cgroups__V1__MemoryStat *mem = msg_pb_alloc(a, sizeof *mem);
	Io__Containerd__Cgroups__V1__MemoryEntry *mu = msg_pb_alloc(a, sizeof *mu);
	Io__Containerd__Cgroups__V1__PidsStat *pids = msg_pb_alloc(a, sizeof *pids);
	int64_t usec, used, limit, current;

	if (!json_is_object(stats))
		return status_set(st, a->code, "%s: expected object", where);
	if (msg_pb_stat(stats, where, "cpu", "usage_usec", &usec, a, st) < 0 ||
	    msg_pb_stat(stats, where, "memory", "usage_bytes", &used, a, st) < 0 ||
	    msg_pb_stat(stats, where, "memory", "limit_bytes", &limit, a, st) < 0 ||
	    msg_pb_stat(stats, where, "pids", "current", &current, a, st) < 0)
		return -1;
	if (usec > INT64_MAX / 1000)
		return status_set(st, a->code, "%s.cpu.usage_usec: out of range", where);
	io__containerd__cgroups__v1__metrics__init(m);
	io__containerd__cgroups__v1__cpustat__init(cpu);
	io__containerd__cgroups__v1__cpuusage__init(usage);
	io__containerd__cgroups__v1__memory_stat__init(mem);
	io__containerd__cgroups__v1__memory_entry__init(mu);
	io__containerd__cgroups__v1__pids_stat__init(pids);
	usage->total = (uint64_t)usec * 1000; /* containerd counts nanoseconds */
	cpu->usage = usage;
	mu->usage = (uint64_t)used;
	mu->limit = (uint64_t)limit;
	mem->usage = mu;
	pids->current = (uint64_t)current;
	m->cpu = cpu;
	m->memory = mem;
	m->pids = pids;
	out->data = msg_pb_pack(&m->base, a, &out->len);
	return 0;
}

/* An Any field of parent from the tree value v, by its rule; left unset without one. */
static int
msg_pb_any_from_tree(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f,
    json_t *v, const char *where, struct msg_pb_arena *a, ProtobufCMessage **out, struct status *st)
{
	const struct msg_pb_any_rule *r = msg_pb_any_rule(parent, f->name);
	Google__Protobuf__Any *any;
	ProtobufCMessage *m;
	size_t len;

	*out = NULL;
	if (r == NULL)
		return 0;
	any = msg_pb_alloc(a, sizeof *any);
	google__protobuf__any__init(any);
	any->type_url = (char *)r->url;
	switch (r->kind) {
	case MSG_PB_ANY_JSON:
		if (!json_is_object(v))
			return status_set(st, a->code, "%s: expected object", where);
		{
			cleanup_free char *text = msg_dump_json(v, &len);
			any->value.data = msg_pb_alloc(a, len);
			memcpy(any->value.data, text, len);
			any->value.len = len;
		}
		break;
	case MSG_PB_ANY_OPTIONS:
		if (msg_pb_from_tree(
			&runtimeoptions__v1__options__descriptor, v, where, a, &m, st) < 0)
			return -1;
		any->value.data = msg_pb_pack(m, a, &any->value.len);
		break;
	case MSG_PB_ANY_METRICS:
		if (msg_pb_metrics(v, where, a, &any->value, st) < 0)
			return -1;
		break;
	}
	*out = &any->base;
	return 0;
}

/* Range-check an integer for field type t. */
static bool
msg_pb_int_fits(ProtobufCType t, json_int_t v)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return v >= INT32_MIN && v <= INT32_MAX;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return v >= 0 && v <= (json_int_t)UINT32_MAX;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return v >= 0;
	default:
		return true;
	}
}

/* One value of field f (of parent) at p from the tree value v. */
static int
msg_pb_value_from_json(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f,
    void *p, json_t *v, const char *where, struct msg_pb_arena *a, struct status *st)
{
	const ProtobufCEnumValue *ev;
	Google__Protobuf__Timestamp *t;
	ProtobufCMessage *sub;
	json_int_t n;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (!json_is_integer(v))
			return status_set(st, a->code, "%s: expected integer", where);
		n = json_integer_value(v);
		if (!msg_pb_int_fits(f->type, n))
			return status_set(st, a->code, "%s: out of range", where);
		if (msg_pb_type_size(f->type) == 4)
			*(int32_t *)p = (int32_t)(uint32_t)n;
		else
			*(int64_t *)p = (int64_t)n;
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return status_set(st, a->code, "%s: expected boolean", where);
		*(protobuf_c_boolean *)p = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!json_is_number(v))
			return status_set(st, a->code, "%s: expected number", where);
		if (f->type == PROTOBUF_C_TYPE_FLOAT)
			*(float *)p = (float)json_number_value(v);
		else
			*(double *)p = json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_ENUM:
		if (json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
		    json_integer_value(v) <= INT32_MAX) {
			*(int *)p = (int)json_integer_value(v);
			return 0;
		}
		ev = json_is_string(v) ? protobuf_c_enum_descriptor_get_value_by_name(
					     f->descriptor, json_string_value(v))
				       : NULL;
		if (ev == NULL)
			return status_set(st, a->code, "%s: not a %s name", where,
			    ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
		*(int *)p = ev->value;
		return 0;
	case PROTOBUF_C_TYPE_STRING:
		if (!json_is_string(v))
			return status_set(st, a->code, "%s: expected string", where);
		*(const char **)p = json_string_value(v); /* borrowed: the tree outlives the pack */
		return 0;
	case PROTOBUF_C_TYPE_BYTES:
		return 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		if (f->descriptor == &google__protobuf__timestamp__descriptor) {
			if (!json_is_string(v))
				return status_set(st, a->code, "%s: expected string", where);
			if (*json_string_value(v) == '\0')
				return 0; /* never set: no Timestamp */
			t = msg_pb_alloc(a, sizeof *t);
			google__protobuf__timestamp__init(t);
			if (msg_pb_time_parse(json_string_value(v), &t->seconds, &t->nanos) < 0 ||
			    !msg_pb_time_valid(t->seconds, t->nanos))
				return status_set(st, a->code, "%s: not an RFC 3339 time", where);
			*(ProtobufCMessage **)p = &t->base;
			return 0;
		}
		if (f->descriptor == &google__protobuf__any__descriptor) {
			if (msg_pb_any_from_tree(parent, f, v, where, a, &sub, st) < 0)
				return -1;
		} else if (msg_pb_from_tree(f->descriptor, v, where, a, &sub, st) < 0) {
			return -1;
		}
		*(ProtobufCMessage **)p = sub;
		return 0;
	}
	fatalx("msg_pb_value_from_json: type %d", (int)f->type);
}

/* A repeated field from a list (or, for a map, an object of strings). */
static int
msg_pb_repeated_from_json(const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *f, json_t *v, const char *where, struct msg_pb_arena *a,
    struct status *st)
{
	size_t size = msg_pb_type_size(f->type), n, j = 0;
	char sub[MSG_PB_WHERE_LEN];
	const char *key;
	json_t *e;
	char *arr;

	if (msg_pb_is_map(f)) {
		const ProtobufCMessageDescriptor *ed = f->descriptor;
		if (!json_is_object(v))
			return status_set(st, a->code, "%s: expected object", where);
		n = json_object_size(v);
		arr = msg_pb_alloc(a, n * size);
		json_object_foreach (v, key, e) {
			ProtobufCMessage *entry = msg_pb_alloc(a, ed->sizeof_message);
			msg_pb_where(sub, where, key, -1);
			if (!json_is_string(e))
				return status_set(st, a->code, "%s: expected string", sub);
			ed->message_init(entry);
			*(const char **)((char *)entry + ed->fields[0].offset) = key;
			*(const char **)((char *)entry + ed->fields[1].offset) =
			    json_string_value(e);
			((ProtobufCMessage **)arr)[j++] = entry;
		}
	} else {
		if (!json_is_array(v))
			return status_set(st, a->code, "%s: expected array", where);
		n = json_array_size(v);
		arr = msg_pb_alloc(a, n * size);
		json_array_foreach (v, j, e) {
			snprintf(sub, sizeof sub, "%s[%zu]", where, j);
			if (msg_pb_value_from_json(d, f, arr + j * size, e, sub, a, st) < 0)
				return -1;
			if (f->type == PROTOBUF_C_TYPE_MESSAGE && ((void **)arr)[j] == NULL)
				return status_set(st, a->code, "%s: no value", sub);
		}
	}
	*(size_t *)((char *)m + f->quantifier_offset) = n;
	*(char **)((char *)m + f->offset) = arr;
	return 0;
}

/* A message of type d from the tree's fields named as d's (other keys are ignored). */
static int
msg_pb_from_tree(const ProtobufCMessageDescriptor *d, json_t *tree, const char *where,
    struct msg_pb_arena *a, ProtobufCMessage **out, struct status *st)
{
	ProtobufCMessage *m = msg_pb_alloc(a, d->sizeof_message);
	char sub[MSG_PB_WHERE_LEN];
	json_t *v;

	d->message_init(m);
	if (tree != NULL && !json_is_object(tree))
		return status_set(st, a->code, "%s: expected object", where);
	for (unsigned i = 0; tree != NULL && i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		v = json_object_get(tree, f->name);
		if (v == NULL || json_is_null(v))
			continue;
		msg_pb_where(sub, where, f->name, -1);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (msg_pb_repeated_from_json(d, m, f, v, sub, a, st) < 0)
				return -1;
			continue;
		}
		if (msg_pb_value_from_json(d, f, (char *)m + f->offset, v, sub, a, st) < 0)
			return -1;
		if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
			*(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
	}
	*out = m;
	return 0;
}

/* ---- requests and responses ---- */

unsigned
msg_pb_method(const char *service, const char *method)
{
	if (service == NULL || method == NULL || strcmp(service, PROTOCOL_TASK_SERVICE) != 0)
		return 0;
	for (unsigned i = 1; i < ARRAY_SIZE(msg_pb_methods); i++)
		if (strcmp(msg_pb_methods[i].name, method) == 0)
			return i;
	return 0;
}

/* A required, non-empty name of the request envelope, into root. */
static int
msg_pb_name(json_t *root, const char *key, const char *s, struct status *st)
{
	char where[32];
	json_t *v;

	snprintf(where, sizeof where, "request.%s", key);
	if (s == NULL || *s == '\0')
		return status_set(st, ST_INVALID_ARGUMENT, "%s: missing", where);
	if (msg_pb_json_string(s, where, &v, st) < 0)
		return -1;
	json_object_set_new(root, key, v);
	return 0;
}

int
msg_pb_request_decode(const void *buf, size_t len, struct msg_request *out, struct status *st)
{
	cleanup_pb ProtobufCMessage *rm = NULL, *pm = NULL;
	cleanup_json json_t *root = json_object(), *md = NULL;
	const Ttrpc__Request *rq;
	json_t *payload = NULL, *v;
	unsigned method;

	memset(out, 0, sizeof *out);
	if ((rm = msg_pb_unpack(&ttrpc__request__descriptor, buf, len, "request", st)) == NULL)
		return -1;
	rq = (const void *)rm;
	if (msg_pb_name(root, "service", rq->service, st) < 0 ||
	    msg_pb_name(root, "method", rq->method, st) < 0)
		return -1;
	if (rq->n_metadata > 0) {
		md = json_object();
		for (size_t i = 0; i < rq->n_metadata; i++) {
			const Ttrpc__KeyValue *kv = rq->metadata[i];
			if (!msg_pb_is_utf8(kv->key) ||
			    msg_pb_json_string(kv->value, "request.metadata", &v, st) < 0)
				return status_set(
				    st, ST_INVALID_ARGUMENT, "request.metadata: invalid UTF-8");
			json_object_set_new(md, kv->key, v);
		}
		json_object_set_new(root, "metadata", steal_ptr(&md));
	}
	method = msg_pb_method(rq->service, rq->method);
	if (method != 0) {
		pm = msg_pb_unpack(
		    msg_pb_methods[method].req, rq->payload.data, rq->payload.len, "payload", st);
		if (pm == NULL || msg_pb_to_tree(pm, "payload", &payload, st) < 0)
			return -1;
	} else {
		payload = json_object();
	}
	json_object_set_new(root, "payload", payload);
	out->codec = MSG_CODEC_PROTOBUF;
	out->pb_method = method;
	out->service = json_string_value(json_object_get(root, "service"));
	out->method = json_string_value(json_object_get(root, "method"));
	out->payload = payload;
	out->metadata = json_object_get(root, "metadata");
	/* As containerd's Go ttrpc server does: a negative timeout means none. */
	out->timeout_nano = rq->timeout_nano > 0 ? rq->timeout_nano : 0;
	out->root = steal_ptr(&root);
	return 0;
}

uint8_t *
msg_pb_response_encode(
    unsigned pb_method, int code, const char *message, json_t *payload, size_t *len)
{
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	struct msg_pb_arena a = {.code = ST_INTERNAL};
	ProtobufCMessage *m;
	cleanup_free char *text = NULL;
	struct status st;
	uint8_t *buf;

	if (pb_method >= ARRAY_SIZE(msg_pb_methods))
		fatalx("msg_pb_response_encode: method %u", pb_method);
	if (code == ST_OK && pb_method != 0) {
		if (msg_pb_from_tree(
			msg_pb_methods[pb_method].resp, payload, "payload", &a, &m, &st) == 0) {
			resp.payload.data = msg_pb_pack(m, &a, &resp.payload.len);
		} else {
			code = st.code;
			message = st.msg;
		}
	}
	text = msg_pb_utf8_repair(message);
	status.code = code;
	status.message = text;
	resp.status = &status;
	buf = msg_pb_pack(&resp.base, NULL, len);
	msg_pb_arena_free(&a);
	return buf;
}

uint8_t *
msg_pb_response_encode_fields(unsigned pb_method, int code, const char *message,
    const struct msg_field *fields, size_t nfields, size_t *len)
{
	cleanup_json json_t *tree = json_object();
	json_t *v;

	for (size_t i = 0; i < nfields; i++) {
		switch (fields[i].type) {
		case MSG_FIELD_STRING:
			v = json_string(fields[i].str != NULL ? fields[i].str : "");
			break;
		case MSG_FIELD_INT:
			v = json_integer((json_int_t)fields[i].num);
			break;
		case MSG_FIELD_BOOL:
			v = json_boolean(fields[i].flag);
			break;
		default:
			fatalx("msg_pb_response_encode_fields: type %d", (int)fields[i].type);
		}
		if (v != NULL)
			json_object_set_new(tree, fields[i].key, v);
	}
	return msg_pb_response_encode(pb_method, code, message, tree, len);
}

int
msg_pb_request_encode(const char *service, const char *method, json_t *payload,
    int64_t timeout_nano, uint8_t **out, size_t *len, struct status *st)
{
	Ttrpc__Request rq = TTRPC__REQUEST__INIT;
	struct msg_pb_arena a = {.code = ST_INVALID_ARGUMENT};
	unsigned id = msg_pb_method(service, method);
	ProtobufCMessage *m;

	rq.service = (char *)service;
	rq.method = (char *)method;
	rq.timeout_nano = timeout_nano;
	if (id != 0) {
		if (msg_pb_from_tree(msg_pb_methods[id].req, payload, "payload", &a, &m, st) < 0) {
			msg_pb_arena_free(&a);
			return -1;
		}
		rq.payload.data = msg_pb_pack(m, &a, &rq.payload.len);
	}
	*out = msg_pb_pack(&rq.base, NULL, len);
	msg_pb_arena_free(&a);
	return 0;
}

int
msg_pb_response_decode(
    unsigned pb_method, const void *buf, size_t len, struct msg_response *out, struct status *st)
{
	cleanup_pb ProtobufCMessage *rm = NULL, *pm = NULL;
	cleanup_json json_t *root = json_object();
	const Ttrpc__Response *r;
	json_t *payload = NULL, *msg;
	int code = 0;

	memset(out, 0, sizeof *out);
	if (pb_method >= ARRAY_SIZE(msg_pb_methods))
		return status_set(st, ST_INVALID_ARGUMENT, "no method %u", pb_method);
	if ((rm = msg_pb_unpack(&ttrpc__response__descriptor, buf, len, "response", st)) == NULL)
		return -1;
	r = (const void *)rm;
	if (r->status != NULL) {
		code = r->status->code;
		if (msg_pb_json_string(r->status->message != NULL ? r->status->message : "",
			"response.status.message", &msg, st) < 0)
			return -1;
	} else {
		msg = json_string("");
	}
	if (code < 0 || code > ST_UNAUTHENTICATED) {
		json_decref(msg);
		return status_set(st, ST_INVALID_ARGUMENT, "response.status.code: out of range");
	}
	json_object_set_new(root, "message", msg);
	if (code == ST_OK && pb_method != 0) {
		pm = msg_pb_unpack(
		    msg_pb_methods[pb_method].resp, r->payload.data, r->payload.len, "payload", st);
		if (pm == NULL || msg_pb_to_tree(pm, "payload", &payload, st) < 0)
			return -1;
	} else {
		payload = json_object();
	}
	json_object_set_new(root, "payload", payload);
	out->code = code;
	out->message = json_string_value(json_object_get(root, "message"));
	out->payload = payload;
	out->root = steal_ptr(&root);
	return 0;
}

int
msg_pb_message_encode(
    unsigned pb_method, bool response, json_t *tree, uint8_t **out, size_t *len, struct status *st)
{
	struct msg_pb_arena a = {.code = ST_INVALID_ARGUMENT};
	const ProtobufCMessageDescriptor *d;
	ProtobufCMessage *m;

	if (pb_method == 0 || pb_method >= ARRAY_SIZE(msg_pb_methods))
		fatalx("msg_pb_message_encode: method %u", pb_method);
	d = response ? msg_pb_methods[pb_method].resp : msg_pb_methods[pb_method].req;
	if (msg_pb_from_tree(d, tree, response ? "response" : "request", &a, &m, st) < 0) {
		msg_pb_arena_free(&a);
		return -1;
	}
	*out = msg_pb_pack(m, NULL, len);
	msg_pb_arena_free(&a);
	return 0;
}

int
msg_pb_runtime_options_decode(const void *buf, size_t len, char **config_path, struct status *st)
{
	cleanup_pb ProtobufCMessage *am = NULL, *om = NULL;
	const Google__Protobuf__Any *any;
	const Runtimeoptions__V1__Options *o;

	*config_path = NULL;
	if (len == 0)
		return 0;
	if ((am = msg_pb_unpack(&google__protobuf__any__descriptor, buf, len, "options", st)) ==
	    NULL)
		return -1;
	any = (const void *)am;
	if (any->type_url == NULL || !msg_pb_url_is(any->type_url, MSG_PB_URL_RUNTIME_OPTIONS))
		return 0;
	om = msg_pb_unpack(&runtimeoptions__v1__options__descriptor, any->value.data,
	    any->value.len, "options.value", st);
	if (om == NULL)
		return -1;
	o = (const void *)om;
	if (o->config_path != NULL && *o->config_path != '\0')
		*config_path = xstrdup(o->config_path);
	return 0;
}

/* ---- events ---- */

int
msg_pb_event_encode(const char *topic, const char *timestamp, const char *ns, json_t *event,
    uint8_t **out, size_t *len, struct status *st)
{
	Containerd__Services__Events__Ttrpc__V1__ForwardRequest fr =
	    CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
	Containerd__Services__Events__Ttrpc__V1__Envelope env =
	    CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct msg_pb_arena a = {.code = ST_INTERNAL};
	const ProtobufCMessageDescriptor *d = NULL;
	ProtobufCMessage *m;

	for (size_t i = 0; i < ARRAY_SIZE(msg_pb_topics); i++)
		if (strcmp(msg_pb_topics[i].topic, topic) == 0)
			d = msg_pb_topics[i].msg;
	if (d == NULL)
		return status_set(
		    st, ST_INTERNAL, "event topic %s has no containerd message", topic);
	if (msg_pb_time_parse(timestamp, &ts.seconds, &ts.nanos) < 0 ||
	    !msg_pb_time_valid(ts.seconds, ts.nanos))
		return status_set(st, ST_INTERNAL, "event %s: bad timestamp %s", topic, timestamp);
	if (msg_pb_from_tree(d, event, "event", &a, &m, st) < 0) {
		msg_pb_arena_free(&a);
		return -1;
	}
	any.type_url = (char *)d->name;
	any.value.data = msg_pb_pack(m, &a, &any.value.len);
	env.timestamp = &ts;
	env.namespace_ = (char *)ns;
	env.topic = (char *)topic;
	env.event = &any;
	fr.envelope = &env;
	*out = msg_pb_pack(&fr.base, NULL, len);
	msg_pb_arena_free(&a);
	return 0;
}

int
msg_pb_event_decode(const void *buf, size_t len, char **topic, char **timestamp, char **ns,
    json_t **event, struct status *st)
{
	cleanup_pb ProtobufCMessage *fm = NULL, *em = NULL;
	const Containerd__Services__Events__Ttrpc__V1__ForwardRequest *fr;
	const Containerd__Services__Events__Ttrpc__V1__Envelope *env;
	const ProtobufCMessageDescriptor *d = NULL;
	char ts[40];

	fm = msg_pb_unpack(&containerd__services__events__ttrpc__v1__forward_request__descriptor,
	    buf, len, "forward", st);
	if (fm == NULL)
		return -1;
	fr = (const void *)fm;
	if ((env = fr->envelope) == NULL || env->event == NULL || env->timestamp == NULL ||
	    env->topic == NULL || env->event->type_url == NULL)
		return status_set(st, ST_INVALID_ARGUMENT, "forward.envelope: incomplete");
	for (size_t i = 0; i < ARRAY_SIZE(msg_pb_topics); i++)
		if (strcmp(msg_pb_topics[i].msg->name, env->event->type_url) == 0)
			d = msg_pb_topics[i].msg;
	if (d == NULL)
		return status_set(st, ST_INVALID_ARGUMENT, "forward.envelope.event: type URL %.80s",
		    env->event->type_url);
	em = msg_pb_unpack(d, env->event->value.data, env->event->value.len, "event", st);
	if (em == NULL || msg_pb_to_tree(em, "event", event, st) < 0)
		return -1;
	if (!msg_pb_time_valid(env->timestamp->seconds, env->timestamp->nanos)) {
		json_decref(*event);
		return status_set(st, ST_INVALID_ARGUMENT, "forward.envelope.timestamp: range");
	}
	msg_pb_time_format(env->timestamp->seconds, env->timestamp->nanos, ts);
	*topic = xstrdup(env->topic);
	*timestamp = xstrdup(ts);
	*ns = xstrdup(env->namespace_ != NULL ? env->namespace_ : "");
	return 0;
}
