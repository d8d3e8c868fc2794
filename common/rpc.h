/*
 * rpc.h: ttrpc + JSON calls, both ends, shared by vmshim, vmshim-agent, vmshimctl and tests.
 *
 * Server side (rpc-server.c): an rpc_conn wraps one accepted socket on a libevent loop
 * (bufferevent). It decodes frames with frame_decoder, answers protocol errors itself
 * (malformed JSON or an even stream id -> INVALID_ARGUMENT, an oversized payload ->
 * RESOURCE_EXHAUSTED with the payload discarded unbuffered) and hands each well-formed request
 * to ops->on_request. A request on a stream id already in flight is answered INVALID_ARGUMENT
 * at once and not run: the client may take that answer for its first request on the id (and
 * drop the first request's real answer, which still follows), but a client that reused an id
 * learns of its bug instead of waiting for ever. A non-request frame has no safe answer: it
 * is logged and ignored, the connection staying up. The handler answers later, from the loop
 * thread, with rpc_conn_respond*(); many requests may be in flight and are answered in any order.
 * Output above RPC_OUTPUT_HIGH stops reading from that peer until it drains (a client that never
 * reads its responses costs a bounded amount of memory and stalls nobody else). All rpc_conn_*
 * functions run on the loop thread that owns the connection; the conn is refcounted so parked
 * requests can hold it after the peer has gone (responses to a closed conn are dropped).
 *
 * Client side (rpc-client.c): an rpc_client multiplexes blocking calls from any number of
 * threads on one connection. Frames go out one at a time, each sent whole by the caller that
 * holds the writer's turn; a call's timeout_ms bounds its wait for the turn and its send as
 * well as the wait for its response, and rpc_client_fail wakes blocked senders at once. A
 * send that times out part-way through a frame leaves the stream out of step: it fails the
 * whole client (that call DEADLINE_EXCEEDED, the others UNAVAILABLE) and shuts the socket
 * down so its reader sees EOF. Responses are matched by stream id. Bytes come in either from the
 * client's own reader thread (rpc_client_start_reader, for programs without a loop) or from whoever
 * reads the fd and calls rpc_client_feed (the shim's loop carries its guest connection that way).
 * The client owns the fd and closes it once, in rpc_client_free, when no caller can still use
 * it.
 */
#ifndef VMSHIM_RPC_H
#define VMSHIM_RPC_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "status.h"

#define RPC_OUTPUT_HIGH (4u * 1024 * 1024)

/* ---- server ---- */

struct rpc_conn;

struct rpc_server_ops {
	/*
	 * A well-formed request. The handler takes `req` (must msg_request_clear it) and answers
	 * exactly once with rpc_conn_respond*() on stream_id, now or later (take a ref to keep
	 * the conn). flags carries FRAME_FLAG_REMOTE_OPEN for stream-opening calls.
	 */
	void (*on_request)(struct rpc_conn *c, uint32_t stream_id, uint8_t flags,
	    struct msg_request *req, void *arg);
	/* The peer is gone or the conn was closed; called once. Optional. */
	void (*on_close)(struct rpc_conn *c, void *arg);
};

/* Wrap an accepted, non-blocking fd (ownership passes in). Refcount 1, held by the loop. */
struct rpc_conn *rpc_conn_new(struct event_base *base, int fd, size_t max_message,
    const struct rpc_server_ops *ops, void *arg);
struct rpc_conn *rpc_conn_ref(struct rpc_conn *c);
void rpc_conn_unref(struct rpc_conn *c);
/* Stop reading, flush what is queued, then close; idempotent; on_close runs. */
void rpc_conn_close(struct rpc_conn *c);
bool rpc_conn_is_closed(const struct rpc_conn *c);
int rpc_conn_fd(const struct rpc_conn *c);
/* Answer a request. payload is borrowed (NULL means {}). Dropped if the conn is closed. */
void rpc_conn_respond(
    struct rpc_conn *c, uint32_t stream_id, int code, const char *message, json_t *payload);
void rpc_conn_respond_status(struct rpc_conn *c, uint32_t stream_id, const struct status *st);
/* Answer with a flat payload described by fields (msg.h), without building a json_t tree. */
void rpc_conn_respond_fields(struct rpc_conn *c, uint32_t stream_id, int code, const char *message,
    const struct msg_field *fields, size_t nfields);
/*
 * Send a data frame (type 3) on an open stream. Returns -1 without queueing when the peer's
 * unread output already exceeds `limit` bytes (the caller drops that subscriber), else 0.
 */
int rpc_conn_send_data(struct rpc_conn *c, uint32_t stream_id, uint8_t flags, const void *buf,
    size_t len, size_t limit);
size_t rpc_conn_output_pending(const struct rpc_conn *c);
/* Counts for tests and metrics. */
unsigned rpc_conn_inflight(const struct rpc_conn *c);
/*
 * Complete frames received from the peer so far, whatever the RPC layer made of them (answered
 * requests, rejected ones, oversized or ignored frames): a peer with any is an active client.
 */
uint64_t rpc_conn_frames_received(const struct rpc_conn *c);

/* ---- client ---- */

struct rpc_client;

/* Take ownership of a connected blocking fd. */
struct rpc_client *rpc_client_new(int fd, size_t max_message);
/* Spawn a reader thread that feeds the client until EOF or error (then fails pending calls). */
int rpc_client_start_reader(struct rpc_client *c, struct status *st);
/* Feed bytes read from the fd elsewhere. -1 on a protocol error (pending calls are failed). */
int rpc_client_feed(struct rpc_client *c, const uint8_t *buf, size_t len);
/* The transport is gone: fail every pending call and every later one with code/message. */
void rpc_client_fail(struct rpc_client *c, int code, const char *message);
bool rpc_client_failed(const struct rpc_client *c);
int rpc_client_fd(const struct rpc_client *c);

/*
 * The frame the peer has started and not finished, for a feeder that bounds how long one frame
 * may take (the shim's guest link: a peer that trickles a frame forever would otherwise hold
 * every later response behind it). Feeding thread only, like rpc_client_feed.
 */
struct rpc_partial_frame {
	int64_t started_ms; /* time_mono_ms() after the feed that brought its first byte */
	size_t received;    /* bytes of it fed so far, header included */
	size_t total;	    /* header + announced payload; 0 while the header is incomplete */
	uint32_t stream_id; /* when total != 0 */
};
/* False between frames; true mid-frame, with *pf filled. Costs no clock read. */
bool rpc_client_partial_frame(const struct rpc_client *c, struct rpc_partial_frame *pf);

/*
 * Blocking call, safe from any thread. timeout_ms <= 0 waits forever (until a response or
 * rpc_client_fail); otherwise it bounds the whole call, sending included. On success returns
 * 0 and *resp_payload (caller decrefs; may pass NULL to ignore). A non-OK status from the peer
 * returns -1 with that code and message in *st; a timeout DEADLINE_EXCEEDED; a dead transport
 * UNAVAILABLE. A call that timed out has its late response discarded.
 */
int rpc_client_call(struct rpc_client *c, const char *service, const char *method, json_t *payload,
    int timeout_ms, json_t **resp_payload, struct status *st);

/*
 * Open a stream: send the request with FRAME_FLAG_REMOTE_OPEN, wait for its response, then
 * deliver every data frame on that stream id to on_data(arg, buf, len) on the feeding thread
 * (the reader thread or the rpc_client_feed caller) until the transport fails, when
 * on_data(arg, NULL, 0) is called once. Returns 0 or -1 with *st.
 */
int rpc_client_subscribe(struct rpc_client *c, const char *service, const char *method,
    json_t *payload, int timeout_ms, void (*on_data)(void *arg, const uint8_t *buf, size_t len),
    void *arg, struct status *st);

/* Fail pending calls, join the reader thread if any, drop the fd reference, free. */
void rpc_client_free(struct rpc_client *c);

#endif
