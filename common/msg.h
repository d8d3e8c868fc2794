/*
 * msg.h: the JSON envelopes carried in ttrpc frames, on jansson.
 *
 * Request  {"service","method","payload":{...},"timeout_nano","metadata":{}}
 * Response {"status":{"code","message"},"payload":{...}}
 * Event    {"topic","timestamp","event":{...}}
 *
 * This is the codec layer: it turns bytes into a decoded envelope and back and knows nothing of
 * what methods mean. Method logic works on the decoded json_t payload through the typed field
 * accessors below (or on plain C structs built from them), so a protobuf codec can later sit
 * beside this one (docs/ARCHITECTURE.md, "A second codec"). Accessor errors name the field and
 * the expected type ("payload.id: expected string") with code INVALID_ARGUMENT.
 * Decoded envelopes own their json_t root; msg_*_clear() releases it.
 */
#ifndef VMSHIM_MSG_H
#define VMSHIM_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

void msg_json_decrefp(json_t **j);
#define cleanup_json __attribute__((cleanup(msg_json_decrefp)))

/* The encoding a request came in, and so the one its answer goes out in. */
enum msg_codec { MSG_CODEC_JSON = 0, MSG_CODEC_PROTOBUF };

struct msg_request {
	json_t *root; /* owns everything below */
	enum msg_codec codec;
	unsigned pb_method;  /* MSG_CODEC_PROTOBUF: msg-pb.h's method number (0: none known) */
	const char *service; /* borrowed from root */
	const char *method;
	json_t *payload;      /* borrowed; an object ({} when absent) */
	int64_t timeout_nano; /* 0 when absent */
	json_t *metadata;     /* borrowed; may be NULL */
};

struct msg_response {
	json_t *root;
	int code;
	const char *message; /* "" when absent */
	json_t *payload;     /* borrowed; an object ({} when absent) */
};

struct msg_event {
	json_t *root;
	const char *topic;
	const char *timestamp;
	json_t *event; /* borrowed; an object */
};

/* Decode from bytes (not NUL-terminated). On error: -1 with INVALID_ARGUMENT in *st. */
int msg_request_decode(const void *buf, size_t len, struct msg_request *out, struct status *st);
int msg_response_decode(const void *buf, size_t len, struct msg_response *out, struct status *st);
int msg_event_decode(const void *buf, size_t len, struct msg_event *out, struct status *st);
void msg_request_clear(struct msg_request *r);
void msg_response_clear(struct msg_response *r);
void msg_event_clear(struct msg_event *e);

/*
 * Encode to a compact JSON byte string (malloc'd, not NUL-counted in *len). The payload /
 * event object is borrowed (not stolen); NULL means {}.
 */
char *msg_request_encode(
    const char *service, const char *method, json_t *payload, int64_t timeout_nano, size_t *len);
char *msg_response_encode(int code, const char *message, json_t *payload, size_t *len);
char *msg_event_encode(const char *topic, const char *timestamp, json_t *event, size_t *len);

/*
 * A flat response payload described in plain C, for hot methods (State) that skip building a
 * json_t tree: each field is a key and a string, integer or boolean, encoded in array order.
 * Codec-neutral: another codec maps the same keys to its own field numbers.
 */
enum msg_field_type { MSG_FIELD_STRING, MSG_FIELD_INT, MSG_FIELD_BOOL };
struct msg_field {
	const char *key;
	enum msg_field_type type;
	const char *str; /* MSG_FIELD_STRING; NULL is "" */
	int64_t num;	 /* MSG_FIELD_INT */
	bool flag;	 /* MSG_FIELD_BOOL */
};
/* clang-format off */
#define MSG_STR(k, v) {.key = (k), .type = MSG_FIELD_STRING, .str = (v)}
#define MSG_INT(k, v) {.key = (k), .type = MSG_FIELD_INT, .num = (v)}
#define MSG_BOOL(k, v) {.key = (k), .type = MSG_FIELD_BOOL, .flag = (v)}
/* clang-format on */
char *msg_response_encode_fields(
    int code, const char *message, const struct msg_field *fields, size_t nfields, size_t *len);
/* Any JSON value as compact text, as json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) writes it. */
char *msg_dump_json(json_t *value, size_t *len);

/*
 * Typed field accessors on a JSON object. `where` names the object for messages ("payload",
 * "payload.rootfs[0]"). A missing field: with `required` an error "<where>.<key>: missing",
 * otherwise *out is left untouched and 0 is returned. A JSON null counts as missing.
 * A wrong type: "<where>.<key>: expected <type>". Integers must fit the C type.
 */
int msg_get_string(json_t *obj, const char *where, const char *key, bool required, const char **out,
    struct status *st);
int msg_get_bool(
    json_t *obj, const char *where, const char *key, bool required, bool *out, struct status *st);
int msg_get_u32(json_t *obj, const char *where, const char *key, bool required, uint32_t *out,
    struct status *st);
int msg_get_i64(json_t *obj, const char *where, const char *key, bool required, int64_t *out,
    struct status *st);
int msg_get_object(json_t *obj, const char *where, const char *key, bool required, json_t **out,
    struct status *st);
int msg_get_array(json_t *obj, const char *where, const char *key, bool required, json_t **out,
    struct status *st);

#endif
