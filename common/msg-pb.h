/*
 * msg-pb.h: the protobuf codec, beside msg.c's JSON one (what stock containerd speaks).
 *
 * A ttrpc payload is JSON when its first byte is '{' and protobuf otherwise
 * (msg_pb_payload_is_json). A protobuf request is ttrpc's Request message whose payload is the
 * method's containerd.task.v2 message; msg_pb_request_decode turns it into the same
 * struct msg_request as the JSON codec, its payload a codec-neutral json_t tree with the proto3
 * field names, so the method code does not know which codec a request came in. The response
 * is encoded into the method's response message (msg_pb_response_encode*). Methods are
 * identified by a small number (msg_request.pb_method, 0 for a method this codec has no
 * messages for: its payload is {} and only an error can answer it).
 *
 * Mapping rules, both ways: proto3 defaults are absent fields (a zero number, an empty string,
 * false, an empty list are left out of a decoded tree, so a "required" check means non-zero);
 * google.protobuf.Timestamp is an RFC 3339 string; an enum is its value's name (the task
 * Status); a map is an object; the Any fields carry what containerd puts there (the OCI
 * Process of Exec and LinuxResources of Update as JSON objects, runtimeoptions in Create,
 * cgroups Metrics built from the guest's stats in Stats).
 *
 * Events: msg_pb_event_encode turns a /tasks/... event tree into the containerd.events message
 * of that topic, wrapped in an Any whose type URL is the message's name, inside
 * containerd.services.events.ttrpc.v1.ForwardRequest.
 *
 * No state, no locks: callable from any thread.
 */
#ifndef VMSHIM_MSG_PB_H
#define VMSHIM_MSG_PB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "protocol.h"
#include "status.h"

/* The type URLs of the Any fields containerd fills with OCI JSON. */
#define MSG_PB_URL_PROCESS	   "types.containerd.io/opencontainers/runtime-spec/1/Process"
#define MSG_PB_URL_RESOURCES	   "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
#define MSG_PB_URL_METRICS	   "io.containerd.cgroups.v1.Metrics"
#define MSG_PB_URL_RUNTIME_OPTIONS "runtimeoptions.v1.Options"

/* JSON when the payload starts with '{'; anything else (empty included) is protobuf. */
bool msg_pb_payload_is_json(const void *buf, size_t len);

/*
 * Decode a protobuf ttrpc Request. On success out->codec is MSG_CODEC_PROTOBUF and
 * out->pb_method names the method (0: none known; the payload is then {} and not looked at).
 * On error: -1 with INVALID_ARGUMENT naming the field ("payload.rootfs[0].type: ...").
 */
int msg_pb_request_decode(const void *buf, size_t len, struct msg_request *out, struct status *st);

/*
 * Encode a ttrpc Response for method pb_method: status code/message and, when code is OK, the
 * payload tree (borrowed; NULL is an empty message) as the method's response message. A tree
 * that does not fit the message (malformed guest data) becomes an INTERNAL response naming the
 * field. Never fails; the caller frees the buffer.
 */
uint8_t *msg_pb_response_encode(
    unsigned pb_method, int code, const char *message, json_t *payload, size_t *len);
/* The same from a flat field list (msg.h), as State answers. */
uint8_t *msg_pb_response_encode_fields(unsigned pb_method, int code, const char *message,
    const struct msg_field *fields, size_t nfields, size_t *len);

/* ---- the client side: tests, tools, the events forwarder ---- */

/* The method number of a Task method by name; 0 when this codec has no messages for it. */
unsigned msg_pb_method(const char *service, const char *method);
/*
 * A ttrpc Request for service/method whose payload is the tree encoded as the method's
 * request message (an unknown method gets an empty payload). -1 with INVALID_ARGUMENT when
 * the tree does not fit the message.
 */
int msg_pb_request_encode(const char *service, const char *method, json_t *payload,
    int64_t timeout_nano, uint8_t **out, size_t *len, struct status *st);
/* Decode a ttrpc Response to method pb_method: code, message and the payload as a tree. */
int msg_pb_response_decode(
    unsigned pb_method, const void *buf, size_t len, struct msg_response *out, struct status *st);

/*
 * The ForwardRequest for one event: Envelope{timestamp (RFC 3339, as events carry it),
 * namespace, topic, event: Any of the topic's containerd.events message}. -1 with INTERNAL
 * for an unknown topic or an event tree that does not fit its message.
 */
int msg_pb_event_encode(const char *topic, const char *timestamp, const char *ns, json_t *event,
    uint8_t **out, size_t *len, struct status *st);
/* Decode a ForwardRequest back into topic, timestamp, namespace and event tree (tests). */
int msg_pb_event_decode(const void *buf, size_t len, char **topic, char **timestamp, char **ns,
    json_t **event, struct status *st);

/*
 * The bare message of method pb_method (its response when `response`, else its request) from
 * a tree, with no ttrpc envelope: what `vmshim delete` prints (a DeleteResponse). -1 with
 * INVALID_ARGUMENT when the tree does not fit. The caller frees *out.
 */
int msg_pb_message_encode(
    unsigned pb_method, bool response, json_t *tree, uint8_t **out, size_t *len, struct status *st);
/*
 * The runtime options containerd writes on `start`'s stdin: a google.protobuf.Any. When it is
 * a runtimeoptions.v1.Options, *config_path gets its config_path (malloc'd, NULL when empty);
 * other option types, and empty input, leave it NULL. -1 with INVALID_ARGUMENT on bad bytes.
 */
int msg_pb_runtime_options_decode(
    const void *buf, size_t len, char **config_path, struct status *st);

/* RFC 3339 text <-> seconds and nanoseconds since the epoch; -1 on malformed text. */
int msg_pb_time_parse(const char *s, int64_t *sec, int32_t *nsec);
void msg_pb_time_format(int64_t sec, int32_t nsec, char out[40]);

#endif
