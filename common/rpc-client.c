/*
 * rpc-client.c: the client end of ttrpc + JSON: blocking calls multiplexed on one connection.
 *
 * Ownership. The client owns the fd from rpc_client_new and closes it in rpc_client_free,
 * after the reader thread (if any) has been joined and no call is in progress, so no thread
 * can still be using it. It is shut down (not closed) in one case: a send
 * that timed out part-way through a frame, after which the byte stream is out of step; the
 * client fails itself and whoever reads the fd (the reader thread, the shim's loop) sees EOF
 * and drops the link, and the peer learns it too. Each call's pending entry lives on
 * the calling thread's stack: it is reachable by others only while it sits in the pending table,
 * and the caller takes it out (under `lock`) before returning, so a response or a failure that
 * comes later finds nothing and is discarded. A subscription outlives its call and is
 * heap-allocated; it is freed at rpc_client_free.
 *
 * Threads. Any number of threads call rpc_client_call/subscribe. Frames go out whole, one at
 * a time: a caller takes the writer's turn (`writing`, under `lock`, waited for on
 * `write_cond`) and sends without holding any lock. Both the wait for the turn and the send
 * are bounded by the call's deadline, and both end at once when the client fails:
 * rpc_client_fail broadcasts write_cond and signals `wake_fd`, an eventfd every sender polls
 * beside the socket. A send that times out before its
 * first byte fails only that call (DEADLINE_EXCEEDED); one that times out part-way fails the
 * whole client before giving up the turn, so no other frame follows the torn one: that call
 * gets DEADLINE_EXCEEDED, every other UNAVAILABLE. Bytes come in on
 * one feeding thread at a time: the reader thread (rpc_client_start_reader) or whoever calls
 * rpc_client_feed; that thread owns the frame decoder and the start time of an unfinished
 * frame (stamped once per frame, only when a feed ends inside one; rpc_client_partial_frame
 * reports it so a feeder with a loop can bound how long one frame may take: this file has no
 * timer of its own), matches responses to pending entries by stream id and runs the subscriptions'
 * on_data callbacks (without holding `lock`, so on_data may not block on this client's own calls).
 * rpc_client_fail may come from any thread; it fails every pending and later call and ends every
 * subscription with on_data(arg, NULL, 0), once.
 *
 * Rule for rpc_client_free: no call may be in progress and no other thread may be feeding;
 * it checks the first (fatalx) since a waiter freed under its own feet is a silent corruption.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "rpc.h"
#include "util.h"

#define RPC_PENDING_BUCKETS 256
#define RPC_READ_CHUNK	    (64u * 1024)
#define RPC_STREAM_ID_MAX   0x7fffffffu /* ids stay below 2^31 */

/* One call waiting for its response; on the caller's stack. */
struct rpc_pending {
	struct rpc_pending *next; /* bucket chain */
	uint32_t stream_id;
	bool done;
	struct status st; /* result, when done */
	json_t *payload;  /* an OK response's payload (owned until handed to the caller) */
	pthread_cond_t cond;
	/* For subscribe: installed as a subscription when an OK response arrives. */
	void (*on_data)(void *arg, const uint8_t *buf, size_t len);
	void *data_arg;
};

/* An open stream whose data frames go to on_data. */
struct rpc_sub {
	struct rpc_sub *next;
	uint32_t stream_id;
	void (*on_data)(void *arg, const uint8_t *buf, size_t len);
	void *arg;
};

struct rpc_client {
	int fd; /* owned; closed by rpc_client_free */
	size_t max_message;

	pthread_mutex_t lock; /* guards everything from here to write_cond */
	struct rpc_pending *pending[RPC_PENDING_BUCKETS];
	struct rpc_sub *subs;	    /* live subscriptions */
	struct rpc_sub *ended_subs; /* got on_data(NULL, 0); freed at free */
	uint32_t next_id;
	unsigned callers; /* threads inside call/subscribe */
	struct status fail_st;
	atomic_bool failed; /* set under lock; read without it too */
	bool writing;	    /* a caller holds the writer's turn and may be sending */

	/* Signalled (with lock) when `writing` clears or the client fails. */
	pthread_cond_t write_cond;

	/* Serializes on_data calls so the final on_data(NULL, 0) never overlaps a data one. */
	pthread_mutex_t deliver_lock;

	struct frame_decoder dec; /* the feeding thread's */
	/*
	 * The feeding thread's: when the frame the decoder is in the middle of started (the time
	 * after the feed that brought its first byte), -1 between frames. Read only at the end of
	 * a feed that leaves a frame unfinished, so a frame that arrives within one feed costs no
	 * clock read.
	 */
	int64_t frame_started_ms;

	bool has_reader;
	pthread_t reader;
	/*
	 * Eventfd written once, by the first rpc_client_fail, and never read: it stays readable,
	 * so the reader thread and every sender polling it return at once. -1 if eventfd failed
	 * (senders are then bounded by their deadlines only and no reader can start).
	 */
	int wake_fd;
};

static void
rpc_client_lock(pthread_mutex_t *m)
{
	int r = pthread_mutex_lock(m);

	if (r != 0)
		fatalx("pthread_mutex_lock: %s", strerror(r));
}

static void
rpc_client_unlock(pthread_mutex_t *m)
{
	int r = pthread_mutex_unlock(m);

	if (r != 0)
		fatalx("pthread_mutex_unlock: %s", strerror(r));
}

/* A condition variable on CLOCK_MONOTONIC, the clock of every deadline here. */
static void
rpc_client_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int r;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if ((r = pthread_cond_init(cond, &attr)) != 0)
		fatalx("pthread_cond_init: %s", strerror(r));
	pthread_condattr_destroy(&attr);
}

struct rpc_client *
rpc_client_new(int fd, size_t max_message)
{
	struct rpc_client *c = xcalloc(1, sizeof *c);
	int r;

	c->fd = fd;
	c->max_message = max_message;
	c->next_id = 1;
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0)
		log_warn("rpc client fd %d: eventfd: %s; failing it will not wake senders", fd,
		    strerror(errno));
	atomic_init(&c->failed, false);
	if ((r = pthread_mutex_init(&c->lock, NULL)) != 0 ||
	    (r = pthread_mutex_init(&c->deliver_lock, NULL)) != 0)
		fatalx("pthread_mutex_init: %s", strerror(r));
	rpc_client_cond_init(&c->write_cond);
	frame_decoder_init(&c->dec, max_message);
	c->frame_started_ms = -1;
	return c;
}

bool
rpc_client_failed(const struct rpc_client *c)
{
	return atomic_load(&((struct rpc_client *)c)->failed);
}

int
rpc_client_fd(const struct rpc_client *c)
{
	return c->fd;
}

bool
rpc_client_partial_frame(const struct rpc_client *c, struct rpc_partial_frame *pf)
{
	const struct frame_decoder *d = &c->dec;

	if (frame_decoder_idle(d) || c->frame_started_ms < 0)
		return false;
	pf->started_ms = c->frame_started_ms;
	pf->received = d->hdr_have + d->payload_have;
	pf->total =
	    d->hdr_have == FRAME_HEADER_SIZE ? FRAME_HEADER_SIZE + (size_t)d->cur.length : 0;
	pf->stream_id = d->hdr_have == FRAME_HEADER_SIZE ? d->cur.stream_id : 0;
	return true;
}

/* ---- pending table (under lock) ---- */

static struct rpc_pending **
rpc_client_bucket(struct rpc_client *c, uint32_t id)
{
	return &c->pending[(id >> 1) % RPC_PENDING_BUCKETS];
}

static struct rpc_pending *
rpc_client_find(struct rpc_client *c, uint32_t id)
{
	struct rpc_pending *p;

	for (p = *rpc_client_bucket(c, id); p != NULL; p = p->next)
		if (p->stream_id == id)
			return p;
	return NULL;
}

static void
rpc_client_unlink(struct rpc_client *c, struct rpc_pending *p)
{
	struct rpc_pending **pp;

	for (pp = rpc_client_bucket(c, p->stream_id); *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

static bool
rpc_client_sub_has(struct rpc_client *c, uint32_t id)
{
	struct rpc_sub *s;

	for (s = c->subs; s != NULL; s = s->next)
		if (s->stream_id == id)
			return true;
	return false;
}

/* Next odd stream id, wrapping before 2^31, skipping ids still pending or subscribed. */
static uint32_t
rpc_client_alloc_id(struct rpc_client *c)
{
	uint32_t id;

	do {
		id = c->next_id;
		c->next_id = id + 2 > RPC_STREAM_ID_MAX ? 1 : id + 2;
	} while (rpc_client_find(c, id) != NULL || rpc_client_sub_has(c, id));
	return id;
}

/* ---- failure ---- */

/*
 * Fail everything pending and later; wake every sender and the reader; end subscriptions.
 * Only the first call has effect.
 */
void
rpc_client_fail(struct rpc_client *c, int code, const char *message)
{
	struct rpc_pending *p;
	struct rpc_sub *subs, *s;
	uint64_t one = 1;
	size_t i;

	rpc_client_lock(&c->lock);
	if (atomic_load(&c->failed)) {
		rpc_client_unlock(&c->lock);
		return;
	}
	status_set(&c->fail_st, code, "%s", message);
	atomic_store(&c->failed, true);
	/* Only this first failure writes: the counter is 1 for ever after, the fd readable. */
	if (c->wake_fd >= 0 && write(c->wake_fd, &one, sizeof one) != sizeof one)
		fatal("eventfd write");
	pthread_cond_broadcast(&c->write_cond);
	for (i = 0; i < RPC_PENDING_BUCKETS; i++)
		for (p = c->pending[i]; p != NULL; p = p->next) {
			if (p->done)
				continue;
			p->done = true;
			p->st = c->fail_st;
			pthread_cond_signal(&p->cond);
		}
	subs = c->subs;
	c->subs = NULL;
	rpc_client_unlock(&c->lock);

	log_debug("rpc client failed: %s: %s", status_code_name(code), message);
	rpc_client_lock(&c->deliver_lock);
	for (s = subs; s != NULL; s = s->next)
		s->on_data(s->arg, NULL, 0);
	rpc_client_unlock(&c->deliver_lock);

	rpc_client_lock(&c->lock);
	while (subs != NULL) {
		s = subs;
		subs = s->next;
		s->next = c->ended_subs;
		c->ended_subs = s;
	}
	rpc_client_unlock(&c->lock);
}

/* ---- input ---- */

/*
 * A response frame: hand it to the waiting call, if one still waits for that id. The envelope
 * is released here and only the payload, with no other owner left, crosses to the caller, so
 * no jansson tree is ever shared between threads.
 */
static void
rpc_client_on_response(struct rpc_client *c, uint32_t id, const uint8_t *buf, size_t len)
{
	struct msg_response resp;
	struct status st;
	struct rpc_pending *p;
	struct rpc_sub *sub;
	json_t *payload = NULL;

	if (msg_response_decode(buf, len, &resp, &st) != 0) {
		status_wrap(&st, "undecodable response");
		st.code = ST_INTERNAL;
	} else {
		status_set(&st, resp.code, "%s", resp.message);
		if (resp.code == ST_OK)
			payload = json_incref(resp.payload);
		msg_response_clear(&resp);
	}

	rpc_client_lock(&c->lock);
	p = rpc_client_find(c, id);
	if (p == NULL || p->done) {
		rpc_client_unlock(&c->lock);
		log_debug("discarding response to stream %u: no call waits for it", id);
		if (payload != NULL)
			json_decref(payload);
		return;
	}
	p->st = st;
	p->payload = payload;
	if (st.code == ST_OK && p->on_data != NULL) {
		sub = xcalloc(1, sizeof *sub);
		sub->stream_id = id;
		sub->on_data = p->on_data;
		sub->arg = p->data_arg;
		sub->next = c->subs;
		c->subs = sub;
	}
	p->done = true;
	pthread_cond_signal(&p->cond);
	rpc_client_unlock(&c->lock);
}

/* A data frame: run its subscription's on_data, outside `lock`. */
static void
rpc_client_on_data(struct rpc_client *c, uint32_t id, const uint8_t *buf, size_t len)
{
	void (*fn)(void *, const uint8_t *, size_t) = NULL;
	void *arg = NULL;
	struct rpc_sub *s;
	static const uint8_t empty[1];

	rpc_client_lock(&c->deliver_lock);
	rpc_client_lock(&c->lock);
	for (s = c->subs; s != NULL; s = s->next)
		if (s->stream_id == id) {
			fn = s->on_data;
			arg = s->arg;
			break;
		}
	rpc_client_unlock(&c->lock);
	if (fn != NULL)
		fn(arg, buf != NULL ? buf : empty, len);
	else
		log_debug("discarding data frame on stream %u: no subscription", id);
	rpc_client_unlock(&c->deliver_lock);
}

/*
 * Decode frames from buf and dispatch them; a protocol error fails the whole client. A frame
 * left unfinished gets its start time stamped (frame_started_ms) for rpc_client_partial_frame.
 */
int
rpc_client_feed(struct rpc_client *c, const uint8_t *buf, size_t len)
{
	struct frame_header h;
	enum frame_result r;
	uint8_t *payload;
	size_t used;
	char msg[160];

	while (len > 0) {
		if (rpc_client_failed(c))
			return -1;
		r = frame_decoder_feed(&c->dec, buf, len, &used, &h, &payload);
		buf += used;
		len -= used;
		if (r == FRAME_MORE) {
			if (c->frame_started_ms < 0 && !frame_decoder_idle(&c->dec))
				c->frame_started_ms = time_mono_ms();
			break;
		}
		c->frame_started_ms = -1; /* a frame ended (whole, or too big and failing us) */
		if (r == FRAME_TOO_BIG) {
			snprintf(msg, sizeof msg,
			    "protocol error: frame of %u bytes on stream %u exceeds %zu", h.length,
			    h.stream_id, c->max_message);
			rpc_client_fail(c, ST_INTERNAL, msg);
			return -1;
		}
		if (h.type == FRAME_TYPE_RESPONSE) {
			rpc_client_on_response(c, h.stream_id, payload, h.length);
		} else if (h.type == FRAME_TYPE_DATA) {
			rpc_client_on_data(c, h.stream_id, payload, h.length);
		} else {
			free(payload);
			snprintf(msg, sizeof msg,
			    "protocol error: unexpected frame type %u on stream %u", h.type,
			    h.stream_id);
			rpc_client_fail(c, ST_INTERNAL, msg);
			return -1;
		}
		free(payload);
	}
	return rpc_client_failed(c) ? -1 : 0;
}

/* The reader thread: poll the fd and the wake eventfd, feed until EOF, error or free. */
static void *
rpc_client_reader(void *arg)
{
	struct rpc_client *c = arg;
	struct pollfd pfd[2];
	uint8_t *buf = xmalloc(RPC_READ_CHUNK);
	char msg[128];
	ssize_t n;

	pfd[0].fd = c->fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = c->wake_fd;
	pfd[1].events = POLLIN;
	while (!rpc_client_failed(c)) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(msg, sizeof msg, "poll: %s", strerror(errno));
			rpc_client_fail(c, ST_UNAVAILABLE, msg);
			break;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents == 0)
			continue;
		n = read(pfd[0].fd, buf, RPC_READ_CHUNK);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(msg, sizeof msg, "read: %s", strerror(errno));
			rpc_client_fail(c, ST_UNAVAILABLE, msg);
			break;
		}
		if (n == 0) {
			rpc_client_fail(c, ST_UNAVAILABLE, "connection closed by peer");
			break;
		}
		if (rpc_client_feed(c, buf, (size_t)n) != 0)
			break;
	}
	free(buf);
	return NULL;
}

int
rpc_client_start_reader(struct rpc_client *c, struct status *st)
{
	int r;

	if (c->has_reader)
		fatalx("rpc_client_start_reader called twice");
	if (c->wake_fd < 0)
		return status_set(st, ST_INTERNAL, "no eventfd to stop a reader thread with");
	r = pthread_create(&c->reader, NULL, rpc_client_reader, c);
	if (r != 0)
		return status_errno(st, ST_INTERNAL, r, "pthread_create");
	c->has_reader = true;
	return 0;
}

/* ---- calls ---- */

/* An absolute CLOCK_MONOTONIC deadline in ms (as time_mono_ms) as a timespec for condvars. */
static void
rpc_client_timespec(int64_t deadline_ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(deadline_ms / 1000);
	ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

/*
 * Wait on cond (with lock held) until signalled or deadline_ms (< 0: no deadline). Returns
 * false once the deadline has passed.
 */
static bool
rpc_client_wait(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
	struct timespec ts;
	int r;

	if (deadline_ms < 0) {
		r = pthread_cond_wait(cond, lock);
	} else {
		rpc_client_timespec(deadline_ms, &ts);
		r = pthread_cond_timedwait(cond, lock, &ts);
		if (r == ETIMEDOUT)
			return false;
	}
	if (r != 0 && r != EINTR)
		fatalx("pthread_cond_wait: %s", strerror(r));
	return true;
}

/*
 * Send one whole frame by deadline_ms: take the writer's turn, write without any lock held
 * (polling the socket and wake_fd), give the turn back. Returns 0 when sent; -ETIMEDOUT when
 * the deadline passed first (if part of the frame went out, the client has been failed and
 * the socket shut down before the turn was given back); -ECANCELED when the client failed
 * meanwhile; another -errno after failing the client with UNAVAILABLE.
 */
static int
rpc_client_send_frame(struct rpc_client *c, const uint8_t *frame, size_t len, int64_t deadline_ms)
{
	char msg[STATUS_MSG_MAX];
	size_t sent = 0;
	int r;

	rpc_client_lock(&c->lock);
	while (c->writing && !atomic_load(&c->failed))
		if (!rpc_client_wait(&c->write_cond, &c->lock, deadline_ms))
			break;
	if (atomic_load(&c->failed)) {
		rpc_client_unlock(&c->lock);
		return -ECANCELED;
	}
	if (c->writing) {
		rpc_client_unlock(&c->lock);
		return -ETIMEDOUT; /* another sender held the turn until our deadline */
	}
	c->writing = true;
	rpc_client_unlock(&c->lock);

	r = write_all_wake(c->fd, frame, len, deadline_ms, c->wake_fd, &sent);
	if (r == -ETIMEDOUT && sent > 0) {
		snprintf(msg, sizeof msg,
		    "send timed out after %zu of %zu bytes of a frame: the stream is out of step",
		    sent, len);
		rpc_client_fail(c, ST_UNAVAILABLE, msg);
		shutdown(c->fd, SHUT_RDWR); /* readers see EOF; the peer learns too */
	} else if (r < 0 && r != -ETIMEDOUT && r != -ECANCELED) {
		snprintf(msg, sizeof msg, "write: %s", strerror(-r));
		rpc_client_fail(c, ST_UNAVAILABLE, msg);
	}

	rpc_client_lock(&c->lock);
	c->writing = false;
	pthread_cond_broadcast(&c->write_cond);
	rpc_client_unlock(&c->lock);
	return r;
}

/*
 * Send one request and wait for its response; shared by call and subscribe. One deadline,
 * timeout_ms from entry, covers the wait for the writer's turn, the send and the response.
 */
static int
rpc_client_do(struct rpc_client *c, const char *service, const char *method, json_t *payload,
    int timeout_ms, uint8_t flags, void (*on_data)(void *, const uint8_t *, size_t), void *arg,
    json_t **resp_payload, struct status *st)
{
	struct rpc_pending p = {0};
	int64_t deadline_ms = timeout_ms > 0 ? time_mono_ms() + timeout_ms : -1;
	cleanup_free char *body = NULL;
	cleanup_free uint8_t *frame = NULL;
	size_t body_len, frame_len;
	bool unsent = false;
	int ret;

	if (resp_payload != NULL)
		*resp_payload = NULL;
	rpc_client_cond_init(&p.cond);
	p.on_data = on_data;
	p.data_arg = arg;

	rpc_client_lock(&c->lock);
	if (atomic_load(&c->failed)) {
		*st = c->fail_st;
		rpc_client_unlock(&c->lock);
		pthread_cond_destroy(&p.cond);
		return -1;
	}
	p.stream_id = rpc_client_alloc_id(c);
	p.next = *rpc_client_bucket(c, p.stream_id);
	*rpc_client_bucket(c, p.stream_id) = &p;
	c->callers++;
	rpc_client_unlock(&c->lock);

	body = msg_request_encode(service, method, payload,
	    timeout_ms > 0 ? (int64_t)timeout_ms * 1000000 : 0, &body_len);
	frame = frame_encode(p.stream_id, FRAME_TYPE_REQUEST, flags, body, body_len, &frame_len);
	/* Any other failure has already failed the client, and with it p. */
	unsent = rpc_client_send_frame(c, frame, frame_len, deadline_ms) == -ETIMEDOUT;

	rpc_client_lock(&c->lock);
	while (!unsent && !p.done)
		if (!rpc_client_wait(&p.cond, &c->lock, deadline_ms))
			break;
	rpc_client_unlink(c, &p);
	c->callers--;
	rpc_client_unlock(&c->lock);
	pthread_cond_destroy(&p.cond);

	if (unsent || !p.done) {
		if (unsent)
			status_set(st, ST_DEADLINE_EXCEEDED,
			    "%s/%s: request not sent within %d ms (the peer is not reading)",
			    service, method, timeout_ms);
		else
			status_set(st, ST_DEADLINE_EXCEEDED, "%s/%s: no response within %d ms",
			    service, method, timeout_ms);
		ret = -1;
	} else if (p.st.code != ST_OK) {
		*st = p.st;
		ret = -1;
	} else {
		status_clear(st);
		ret = 0;
	}
	if (ret == 0 && resp_payload != NULL)
		*resp_payload = steal_ptr(&p.payload);
	if (p.payload != NULL)
		json_decref(p.payload);
	return ret;
}

int
rpc_client_call(struct rpc_client *c, const char *service, const char *method, json_t *payload,
    int timeout_ms, json_t **resp_payload, struct status *st)
{
	return rpc_client_do(
	    c, service, method, payload, timeout_ms, 0, NULL, NULL, resp_payload, st);
}

int
rpc_client_subscribe(struct rpc_client *c, const char *service, const char *method, json_t *payload,
    int timeout_ms, void (*on_data)(void *arg, const uint8_t *buf, size_t len), void *arg,
    struct status *st)
{
	if (on_data == NULL)
		fatalx("rpc_client_subscribe without on_data");
	return rpc_client_do(c, service, method, payload, timeout_ms, FRAME_FLAG_REMOTE_OPEN,
	    on_data, arg, NULL, st);
}

/* Fail what is left, stop and join the reader, free subscriptions, drop the fd reference. */
void
rpc_client_free(struct rpc_client *c)
{
	struct rpc_sub *s;
	unsigned callers;

	if (c == NULL)
		return;
	rpc_client_lock(&c->lock);
	callers = c->callers;
	rpc_client_unlock(&c->lock);
	if (callers != 0)
		fatalx("rpc_client_free with %u calls in progress", callers);
	rpc_client_fail(c, ST_UNAVAILABLE, "client closed"); /* wakes the reader, if any */
	if (c->has_reader)
		pthread_join(c->reader, NULL);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	while ((s = c->ended_subs) != NULL) {
		c->ended_subs = s->next;
		free(s);
	}
	frame_decoder_free(&c->dec);
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->deliver_lock);
	pthread_cond_destroy(&c->write_cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
