/*
 * rpc-server.c: the server end of ttrpc + JSON on a libevent loop (docs/CONTRACT.md 4).
 *
 * An rpc_conn owns one accepted socket, driven by a bufferevent. The conn, not the bufferevent,
 * closes the fd, once, when it finishes closing: it first detaches the fd from the bufferevent
 * (bufferevent_setfd -1 takes it out of epoll at once), then closes it, then frees the
 * bufferevent. BEV_OPT_CLOSE_ON_FREE is not used because a bufferevent freed from inside its
 * own callback closes its fd only at a later deferred finalization, after on_close has told
 * the owner the descriptor is gone. The read callback slices the input
 * evbuffer chunk by chunk into a frame_decoder (bounded by max_message), answers protocol errors
 * itself and hands each well-formed request to ops->on_request with its stream id marked in
 * flight; the handler answers once, now or later, with rpc_conn_respond*(), which clears the id.
 *
 * Everything here runs on the loop thread that owns the event_base; nothing is locked.
 *
 * Lifetime. rpc_conn_new returns the conn with one reference that belongs to its I/O (the
 * "loop" reference): it is dropped by the conn itself right after on_close has run, so an owner
 * that only tracks live connections keeps a plain pointer and forgets it in on_close. Anyone
 * who keeps the pointer past on_close (a parked Wait) takes rpc_conn_ref and later
 * rpc_conn_unref. Every callback of ours holds a temporary reference while it runs, so a
 * handler may unref or close freely; the struct is freed by whichever unref drops the last
 * reference, which is never inside our own stack frames.
 *
 * Closing happens once, from EOF, a socket error or rpc_conn_close: reading stops, the output
 * already queued is flushed (bounded by RPC_FLUSH_TIMEOUT_S for a peer that stopped reading),
 * then the fd is closed and the bufferevent freed, on_close runs, and the loop reference is
 * dropped. From the moment closing starts rpc_conn_is_closed() is true and responses are
 * dropped silently. A write to a vanished peer can raise SIGPIPE: programs ignore it.
 *
 * Backpressure: when the output queued for the peer exceeds RPC_OUTPUT_HIGH, reading from that
 * peer stops (bytes already read wait in the input buffer); the write watermark wakes us once
 * the output drains below half of it and reading resumes with what was left.
 *
 * Codecs: a request is decoded by msg.c (JSON: its payload starts with '{') or msg-pb.c
 * (protobuf, what stock containerd sends), and every answer on its stream id, errors included,
 * goes out in the same codec: the in-flight set remembers the codec and protobuf method of
 * each stream. An oversized request is answered once the first byte of its payload shows its
 * codec (the payload is still skipped, never buffered). Every rejected request is logged at
 * debug level.
 *
 * Output path: a frame is written at once with one sendmsg when nothing is queued before it
 * (the usual case: one response per request), so a response costs no EV_WRITE add, loop pass
 * and remove; only what the socket does not take goes to the bufferevent's output buffer,
 * which then writes it in order, reports write errors and drives the watermark above.
 */
#include "config.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "msg-pb.h"
#include "rpc.h"
#include "util.h"

/* How long a closing conn waits for a peer to take its queued output. */
#define RPC_FLUSH_TIMEOUT_S 5

/* Initial size of the in-flight set (a power of two). */
#define RPC_INFLIGHT_INITIAL 16

struct rpc_conn {
	struct event_base *base;
	struct bufferevent *bev; /* owns the fd; NULL once closed */
	int fd;			 /* -1 once closed */
	size_t max_message;
	const struct rpc_server_ops *ops;
	void *arg;
	struct frame_decoder dec;

	unsigned refs;
	bool closing;	  /* no more reading nor responses; flushing */
	bool closed;	  /* bufferevent freed, on_close run */
	bool read_paused; /* output over RPC_OUTPUT_HIGH */
	uint64_t frames;  /* complete frames (headers, for oversized ones) received */

	/* Stream ids answered by nobody yet: open addressing, linear probing, id 0 = empty. */
	struct rpc_inflight *inflight;
	size_t inflight_cap;
	unsigned inflight_n;

	/* An oversized request whose payload's first byte (its codec) has not arrived yet. */
	bool too_big_pending;
	struct frame_header too_big;
};

/* A request in flight: its stream and how its answer is encoded. */
struct rpc_inflight {
	uint32_t id;
	uint8_t codec;	    /* enum msg_codec */
	uint16_t pb_method; /* msg-pb.h's method number */
};

static void rpc_conn_read_cb(struct bufferevent *bev, void *arg);
static void rpc_conn_write_cb(struct bufferevent *bev, void *arg);
static void rpc_conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void rpc_conn_finish(struct rpc_conn *c);

/* ---- in-flight stream id set ---- */

static size_t
rpc_inflight_slot(uint32_t id, size_t cap)
{
	/* Odd ids: drop the low bit, then spread with a multiplicative hash. */
	return (size_t)(((id >> 1) * 2654435761u) & (cap - 1));
}

static bool
rpc_inflight_has(const struct rpc_conn *c, uint32_t id)
{
	size_t i;

	for (i = rpc_inflight_slot(id, c->inflight_cap); c->inflight[i].id != 0;
	     i = (i + 1) & (c->inflight_cap - 1))
		if (c->inflight[i].id == id)
			return true;
	return false;
}

static void
rpc_inflight_insert_raw(struct rpc_inflight *tab, size_t cap, struct rpc_inflight e)
{
	size_t i;

	for (i = rpc_inflight_slot(e.id, cap); tab[i].id != 0; i = (i + 1) & (cap - 1))
		;
	tab[i] = e;
}

/* Add e (its id not present, not 0), doubling the table to keep it at most half full. */
static void
rpc_inflight_add(struct rpc_conn *c, struct rpc_inflight e)
{
	struct rpc_inflight *tab;
	size_t cap, i;

	if ((c->inflight_n + 1) * 2 > c->inflight_cap) {
		cap = c->inflight_cap * 2;
		tab = xcalloc(cap, sizeof *tab);
		for (i = 0; i < c->inflight_cap; i++)
			if (c->inflight[i].id != 0)
				rpc_inflight_insert_raw(tab, cap, c->inflight[i]);
		free(c->inflight);
		c->inflight = tab;
		c->inflight_cap = cap;
	}
	rpc_inflight_insert_raw(c->inflight, c->inflight_cap, e);
	c->inflight_n++;
}

/*
 * Remove id into *out; returns false if it was not in flight. Backward-shift keeps probes
 * unbroken.
 */
static bool
rpc_inflight_remove(struct rpc_conn *c, uint32_t id, struct rpc_inflight *out)
{
	size_t mask = c->inflight_cap - 1, i, j, home;

	for (i = rpc_inflight_slot(id, c->inflight_cap); c->inflight[i].id != id;
	     i = (i + 1) & mask)
		if (c->inflight[i].id == 0)
			return false;
	*out = c->inflight[i];
	c->inflight[i].id = 0;
	for (j = (i + 1) & mask; c->inflight[j].id != 0; j = (j + 1) & mask) {
		home = rpc_inflight_slot(c->inflight[j].id, c->inflight_cap);
		/* Move j's entry into the hole at i unless its home lies cyclically in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			c->inflight[i] = c->inflight[j];
			c->inflight[j].id = 0;
			i = j;
		}
	}
	c->inflight_n--;
	return true;
}

/* ---- lifetime ---- */

/* Wrap an accepted fd in a bufferevent and start reading; the conn owns the fd from here. */
struct rpc_conn *
rpc_conn_new(struct event_base *base, int fd, size_t max_message, const struct rpc_server_ops *ops,
    void *arg)
{
	struct rpc_conn *c = xcalloc(1, sizeof *c);

	c->base = base;
	c->fd = fd;
	c->max_message = max_message;
	c->ops = ops;
	c->arg = arg;
	c->refs = 1;
	c->inflight_cap = RPC_INFLIGHT_INITIAL;
	c->inflight = xcalloc(c->inflight_cap, sizeof *c->inflight);
	frame_decoder_init(&c->dec, max_message);
	c->bev = bufferevent_socket_new(base, fd, 0);
	if (c->bev == NULL)
		fatalx("bufferevent_socket_new failed for fd %d", fd);
	bufferevent_setcb(c->bev, rpc_conn_read_cb, rpc_conn_write_cb, rpc_conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, RPC_OUTPUT_HIGH / 2, 0);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0)
		fatalx("bufferevent_enable failed for fd %d", fd);
	return c;
}

struct rpc_conn *
rpc_conn_ref(struct rpc_conn *c)
{
	if (c->refs == 0)
		fatalx("rpc_conn_ref on a freed connection");
	c->refs++;
	return c;
}

/* Drop a reference; the last one frees the struct (the fd went when the conn closed). */
void
rpc_conn_unref(struct rpc_conn *c)
{
	if (c == NULL)
		return;
	if (c->refs == 0)
		fatalx("rpc_conn_unref on a connection with no references");
	if (--c->refs > 0)
		return;
	if (!c->closed)
		fatalx(
		    "rpc_conn_unref: last reference dropped on an open connection (fd %d)", c->fd);
	frame_decoder_free(&c->dec);
	free(c->inflight);
	free(c);
}

/* The flush is over (or failed): free the bufferevent, run on_close, drop the loop ref. */
static void
rpc_conn_finish(struct rpc_conn *c)
{
	if (c->closed)
		return;
	c->closing = true;
	c->closed = true;
	if (c->inflight_n > 0)
		log_debug("fd %d closed with %u requests in flight", c->fd, c->inflight_n);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setfd(c->bev, -1); /* out of epoll before the number can be reused */
	close(c->fd);		       /* the one close */
	bufferevent_free(c->bev);
	c->bev = NULL;
	c->fd = -1;
	if (c->ops->on_close != NULL)
		c->ops->on_close(c, c->arg);
	rpc_conn_unref(c); /* the loop's reference */
}

/* Stop reading; finish at once if nothing is queued, else when the output has drained. */
static void
rpc_conn_begin_close(struct rpc_conn *c)
{
	struct timeval tv = {RPC_FLUSH_TIMEOUT_S, 0};

	if (c->closing)
		return;
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		rpc_conn_finish(c);
		return;
	}
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	bufferevent_enable(c->bev, EV_WRITE);
}

void
rpc_conn_close(struct rpc_conn *c)
{
	rpc_conn_ref(c);
	rpc_conn_begin_close(c);
	rpc_conn_unref(c);
}

bool
rpc_conn_is_closed(const struct rpc_conn *c)
{
	return c->closing;
}

int
rpc_conn_fd(const struct rpc_conn *c)
{
	return c->fd;
}

size_t
rpc_conn_output_pending(const struct rpc_conn *c)
{
	if (c->bev == NULL)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

unsigned
rpc_conn_inflight(const struct rpc_conn *c)
{
	return c->inflight_n;
}

uint64_t
rpc_conn_frames_received(const struct rpc_conn *c)
{
	return c->frames;
}

/* ---- output ---- */

/*
 * Nothing is queued: give the frame to the kernel now, in one sendmsg, and return how many
 * of its bytes went out (0 on EAGAIN or any error). This skips the bufferevent's EV_WRITE
 * add, loop pass and remove for every response. The caller queues the rest; on a real
 * error the bufferevent's own write of it fails the same way and closes the conn.
 */
static size_t
rpc_conn_write_now(struct rpc_conn *c, const uint8_t *hdr, const void *buf, size_t len)
{
	struct iovec iov[2] = {{(void *)hdr, FRAME_HEADER_SIZE}, {(void *)buf, len}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
	ssize_t n;

	do
		n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n > 0 ? (size_t)n : 0;
}

/*
 * Send one frame, directly when nothing is queued before it, else (and for what the socket
 * did not take) through the output buffer; past RPC_OUTPUT_HIGH stop reading from this peer
 * until it drains.
 */
static void
rpc_conn_queue(struct rpc_conn *c, uint32_t stream_id, uint8_t type, uint8_t flags, const void *buf,
    size_t len)
{
	struct frame_header h = {(uint32_t)len, stream_id, type, flags};
	uint8_t hdr[FRAME_HEADER_SIZE];
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t sent = 0;

	frame_header_pack(&h, hdr);
	if (evbuffer_get_length(out) == 0)
		sent = rpc_conn_write_now(c, hdr, buf, len);
	if (sent < sizeof hdr) {
		if (evbuffer_add(out, hdr + sent, sizeof hdr - sent) != 0 ||
		    (len > 0 && evbuffer_add(out, buf, len) != 0))
			fatalx("evbuffer_add: out of memory");
	} else if (sent < sizeof hdr + len) {
		sent -= sizeof hdr;
		if (evbuffer_add(out, (const uint8_t *)buf + sent, len - sent) != 0)
			fatalx("evbuffer_add: out of memory");
	}
	if (!c->read_paused && evbuffer_get_length(out) > RPC_OUTPUT_HIGH) {
		c->read_paused = true;
		bufferevent_disable(c->bev, EV_READ);
		log_debug("fd %d: %zu bytes unread by the peer, reading paused", c->fd,
		    evbuffer_get_length(out));
	}
}

/* Encode (in the request's codec) and queue a response frame; no in-flight bookkeeping. */
static void
rpc_conn_send_response(struct rpc_conn *c, const struct rpc_inflight *e, int code,
    const char *message, json_t *payload)
{
	cleanup_free void *buf = NULL;
	size_t len;

	if (e->codec == MSG_CODEC_PROTOBUF)
		buf = msg_pb_response_encode(
		    e->pb_method, code, message != NULL ? message : "", payload, &len);
	else
		buf = msg_response_encode(code, message != NULL ? message : "", payload, &len);
	rpc_conn_queue(c, e->id, FRAME_TYPE_RESPONSE, 0, buf, len);
}

/* Answer a request that never reached a handler (rejected by this layer), and log why. */
static void
rpc_conn_reject(
    struct rpc_conn *c, uint32_t stream_id, enum msg_codec codec, int code, const char *message)
{
	struct rpc_inflight e = {.id = stream_id, .codec = (uint8_t)codec};

	log_debug("fd %d: request on stream %u rejected (%s): %s: %s", c->fd, stream_id,
	    codec == MSG_CODEC_PROTOBUF ? "protobuf" : "JSON", status_code_name(code), message);
	rpc_conn_send_response(c, &e, code, message, NULL);
}

/*
 * A handler answers stream_id: true when the answer should go out (the request was in flight
 * and the conn is open). Unknown ids are a handler bug: logged and dropped.
 */
static bool
rpc_conn_answering(struct rpc_conn *c, uint32_t stream_id, struct rpc_inflight *e)
{
	if (c->closing)
		return false;
	if (!rpc_inflight_remove(c, stream_id, e)) {
		log_warn("fd %d: response to stream %u which is not in flight, dropped", c->fd,
		    stream_id);
		return false;
	}
	return true;
}

/* Answer a request the handler was given. */
void
rpc_conn_respond(
    struct rpc_conn *c, uint32_t stream_id, int code, const char *message, json_t *payload)
{
	struct rpc_inflight e;

	if (rpc_conn_answering(c, stream_id, &e))
		rpc_conn_send_response(c, &e, code, message, payload);
}

/* Answer with a flat payload (msg.h's msg_field list), encoded without a json_t tree. */
void
rpc_conn_respond_fields(struct rpc_conn *c, uint32_t stream_id, int code, const char *message,
    const struct msg_field *fields, size_t nfields)
{
	cleanup_free void *buf = NULL;
	struct rpc_inflight e;
	size_t len;

	if (!rpc_conn_answering(c, stream_id, &e))
		return;
	if (e.codec == MSG_CODEC_PROTOBUF)
		buf = msg_pb_response_encode_fields(
		    e.pb_method, code, message, fields, nfields, &len);
	else
		buf = msg_response_encode_fields(code, message, fields, nfields, &len);
	rpc_conn_queue(c, stream_id, FRAME_TYPE_RESPONSE, 0, buf, len);
}

void
rpc_conn_respond_status(struct rpc_conn *c, uint32_t stream_id, const struct status *st)
{
	rpc_conn_respond(c, stream_id, st->code, st->msg, NULL);
}

/* Send a data frame unless the peer already has more than `limit` bytes unread. */
int
rpc_conn_send_data(struct rpc_conn *c, uint32_t stream_id, uint8_t flags, const void *buf,
    size_t len, size_t limit)
{
	if (c->closing)
		return -1;
	if (rpc_conn_output_pending(c) > limit)
		return -1;
	rpc_conn_queue(c, stream_id, FRAME_TYPE_DATA, flags, buf, len);
	return 0;
}

/* ---- input ---- */

/* Check a request frame, decode it and hand it to the handler, or answer the error. */
static void
rpc_conn_dispatch(struct rpc_conn *c, const struct frame_header *h, const uint8_t *payload)
{
	enum msg_codec codec =
	    msg_pb_payload_is_json(payload, h->length) ? MSG_CODEC_JSON : MSG_CODEC_PROTOBUF;
	struct msg_request req;
	struct status st;
	char msg[96];
	int r;

	if (h->type != FRAME_TYPE_REQUEST) {
		/* Responses and data belong to streams the client owns: nothing to answer. */
		log_debug(
		    "fd %d: ignoring frame of type %u on stream %u", c->fd, h->type, h->stream_id);
		return;
	}
	if (h->stream_id % 2 == 0) {
		snprintf(msg, sizeof msg, "stream id %u: client streams must be odd", h->stream_id);
		rpc_conn_reject(c, h->stream_id, codec, ST_INVALID_ARGUMENT, msg);
		return;
	}
	if (rpc_inflight_has(c, h->stream_id)) {
		/*
		 * A client bug that must not leave it waiting for ever: answered INVALID_ARGUMENT
		 * at once (rpc.h says why that is the lesser harm); the first request is still
		 * served, and its answer follows on the same id.
		 */
		log_warn(
		    "fd %d: request on stream %u, already in flight: refused", c->fd, h->stream_id);
		snprintf(msg, sizeof msg, "stream id %u: a request on it is still in flight",
		    h->stream_id);
		rpc_conn_reject(c, h->stream_id, codec, ST_INVALID_ARGUMENT, msg);
		return;
	}
	if (codec == MSG_CODEC_JSON)
		r = msg_request_decode(payload, h->length, &req, &st);
	else
		r = msg_pb_request_decode(payload, h->length, &req, &st);
	if (r != 0) {
		rpc_conn_reject(c, h->stream_id, codec, st.code, st.msg);
		return;
	}
	rpc_inflight_add(c, (struct rpc_inflight){.id = h->stream_id,
				.codec = (uint8_t)req.codec,
				.pb_method = (uint16_t)req.pb_method});
	c->ops->on_request(c, h->stream_id, h->flags, &req, c->arg);
}

/*
 * An oversized frame: its payload is being skipped; a request gets RESOURCE_EXHAUSTED, in the
 * codec its first payload byte shows (first: that byte, -1 when the payload is empty).
 */
static void
rpc_conn_too_big(struct rpc_conn *c, const struct frame_header *h, int first)
{
	uint8_t b = first < 0 ? 0 : (uint8_t)first;
	char msg[128];

	log_warn("fd %d: frame of %u bytes on stream %u over the %zu byte limit", c->fd, h->length,
	    h->stream_id, c->max_message);
	if (h->type != FRAME_TYPE_REQUEST || h->stream_id % 2 == 0 ||
	    rpc_inflight_has(c, h->stream_id))
		return;
	snprintf(msg, sizeof msg, "message of %u bytes exceeds max_message_bytes %zu", h->length,
	    c->max_message);
	rpc_conn_reject(c, h->stream_id,
	    msg_pb_payload_is_json(&b, first < 0 ? 0 : 1) ? MSG_CODEC_JSON : MSG_CODEC_PROTOBUF,
	    ST_RESOURCE_EXHAUSTED, msg);
}

/* An oversized request waits for its first payload byte; answer it once that is here. */
static void
rpc_conn_too_big_first_byte(struct rpc_conn *c, struct evbuffer *in)
{
	uint8_t b;

	if (!c->too_big_pending || evbuffer_get_length(in) == 0)
		return;
	if (evbuffer_copyout(in, &b, 1) != 1)
		return;
	c->too_big_pending = false;
	rpc_conn_too_big(c, &c->too_big, b);
}

/* Feed what the input buffer holds to the decoder until it is empty or we must stop. */
static void
rpc_conn_process(struct rpc_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec vec;
	struct frame_header h;
	enum frame_result r;
	uint8_t *payload;
	size_t used;

	while (!c->closing && !c->read_paused && evbuffer_get_length(in) > 0) {
		rpc_conn_too_big_first_byte(c, in);
		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
			break;
		r = frame_decoder_feed(&c->dec, vec.iov_base, vec.iov_len, &used, &h, &payload);
		evbuffer_drain(in, used);
		if (r == FRAME_READY) {
			c->frames++;
			rpc_conn_dispatch(c, &h, payload);
			free(payload);
		} else if (r == FRAME_TOO_BIG) {
			c->frames++;
			if (h.length == 0) {
				rpc_conn_too_big(c, &h, -1);
			} else {
				c->too_big = h;
				c->too_big_pending = true;
				rpc_conn_too_big_first_byte(c, in);
			}
		}
	}
}

static void
rpc_conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_conn *c = arg;

	(void)bev;
	rpc_conn_ref(c);
	rpc_conn_process(c);
	rpc_conn_unref(c);
}

/* Output fell below the low watermark: resume reading, or finish a close once drained. */
static void
rpc_conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_conn *c = arg;

	rpc_conn_ref(c);
	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			rpc_conn_finish(c);
	} else if (c->read_paused &&
		   evbuffer_get_length(bufferevent_get_output(bev)) <= RPC_OUTPUT_HIGH / 2) {
		c->read_paused = false;
		bufferevent_enable(bev, EV_READ);
		rpc_conn_process(c); /* what was read before the pause */
	}
	rpc_conn_unref(c);
}

/* EOF flushes what we owe the peer and closes; errors and flush timeouts close at once. */
static void
rpc_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct rpc_conn *c = arg;

	(void)bev;
	rpc_conn_ref(c);
	if (what & BEV_EVENT_EOF) {
		log_debug("fd %d: peer closed", c->fd);
		rpc_conn_begin_close(c);
	} else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		log_debug("fd %d: %s", c->fd,
		    (what & BEV_EVENT_TIMEOUT) ? "flush timed out" : "socket error");
		rpc_conn_finish(c);
	}
	rpc_conn_unref(c);
}
