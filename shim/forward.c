/*
 * forward.c: the events client to containerd (Events/Forward on TTRPC_ADDRESS).
 *
 * Design. The loop thread encodes each event once (msg_pb_event_encode, wrapped in a ttrpc
 * Request) and appends it to a queue; one forwarding thread, the queue's only consumer, sends
 * the queue's head, waits for containerd's answer (bounded by FORWARD_CALL_TIMEOUT_MS), and
 * only then removes it, so events go out one at a time and in order, and an event that was
 * not answered is sent again after a reconnect. A connection that fails, times out or answers
 * garbage is closed and reopened with an exponential backoff; containerd refusing an event
 * (a non-OK status) drops it with a log line, since sending it again would be refused again.
 * The queue holds at most FORWARD_QUEUE_MAX events: past that the oldest one not being sent
 * is dropped, logged.
 *
 * Threads and locks. fw.lock guards the queue, the counters and the reachable/stopping
 * flags; the thread holds it only to look at the queue, never across a socket call. The item
 * at the head that the thread is sending is marked in_flight and is never dropped or freed by
 * anyone else. The thread tells the loop thread that events were settled (or that containerd
 * went out of reach) with event_active on fw.notify, which runs the progress callback given to
 * forward_start (the task table's task_forward_progress) on the loop. The connection's fd belongs
 * to the thread alone and is closed once, by it.
 *
 * Ordering against Wait: events carry increasing sequence numbers; every number below the
 * queue's head is settled (delivered, refused or dropped), which is what forward_settled
 * answers, together with "containerd cannot be reached now" (reachable false), so a shim whose
 * containerd is away answers Waits at once while its events wait for containerd's return.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "frame.h"
#include "log.h"
#include "msg-pb.h"
#include "shim.h"
#include "transport.h"
#include "ttrpc.pb-c.h"
#include "util.h"

#define FORWARD_QUEUE_MAX	   1024
#define FORWARD_CALL_TIMEOUT_MS	   5000
#define FORWARD_BACKOFF_MIN_MS	   50
#define FORWARD_BACKOFF_MAX_MS	   2000
#define FORWARD_RESPONSE_MAX	   65536
#define FORWARD_CONNECT_TIMEOUT_MS 2000

struct forward_item {
	uint64_t seq;
	char *topic;
	uint8_t *req; /* a packed ttrpc Request for Events/Forward */
	size_t len;
	bool in_flight; /* the thread is sending it: nobody else frees it */
	struct forward_item *next;
};

static struct {
	/* Set on the loop thread before the thread starts, read-only while it runs. */
	char *address;
	char *ns;
	struct event_base *base;
	struct event *notify;
	void (*progress)(void); /* run by notify's callback: more events are settled */
	pthread_t thread;
	bool started;
	size_t queue_max; /* FORWARD_QUEUE_MAX, or a test's VMSHIM_TEST_FORWARD_QUEUE */

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;  /* the queue gained an item, or stopping was set */
	struct forward_item *head, *tail;
	size_t n;
	uint64_t last_seq;     /* the last number handed out */
	uint64_t settled_upto; /* every event numbered up to this one is settled */
	bool reachable;	       /* the last connect or call worked (or none was tried) */
	bool stopping;
	int64_t flush_deadline; /* once stopping: give up at this time_mono_ms */
	struct forward_stats stats;
} fw = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void
forward_item_free(struct forward_item *it)
{
	if (it == NULL)
		return;
	free(it->topic);
	free(it->req);
	free(it);
}

/* Locked: the settled mark after the head changed. */
static void
forward_settle_locked(void)
{
	fw.settled_upto = fw.head != NULL ? fw.head->seq - 1 : fw.last_seq;
}

/* Locked: unlink item it (prev its predecessor or NULL) and free it. */
static void
forward_remove_locked(struct forward_item *prev, struct forward_item *it)
{
	if (prev == NULL)
		fw.head = it->next;
	else
		prev->next = it->next;
	if (fw.tail == it)
		fw.tail = prev;
	fw.n--;
	forward_item_free(it);
	forward_settle_locked();
}

/* Any thread: have the loop run the progress callback. */
static void
forward_wake_loop(void)
{
	event_active(fw.notify, EV_READ, 0);
}

/* Loop thread: events were settled or containerd went out of reach. */
static void
forward_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fw.progress();
}

void
forward_configure(const char *address, const char *ns)
{
	const char *v;
	uint32_t n;

	free(fw.address);
	free(fw.ns);
	fw.address = NULL;
	fw.ns = NULL;
	if (address == NULL || *address == '\0')
		return;
	if (strncmp(address, "unix://", 7) == 0)
		address += 7;
	fw.address = xstrdup(address);
	fw.ns = xstrdup(ns != NULL ? ns : "default");
	fw.queue_max = FORWARD_QUEUE_MAX;
	/* Test-only: a small queue, to see the oldest event dropped (logged when in effect). */
	if ((v = getenv("VMSHIM_TEST_FORWARD_QUEUE")) != NULL && parse_u32(v, &n) == 0 && n > 0) {
		fw.queue_max = n;
		log_warn("test override: events queue for containerd holds %u "
			 "(VMSHIM_TEST_FORWARD_QUEUE)",
		    n);
	}
}

/* Connect to containerd's socket; -1 when it cannot be reached now. Forwarding thread. */
static int
forward_connect(void)
{
	struct endpoint ep = {.kind = ENDPOINT_UNIX};
	struct status st;
	int fd;

	if (strlen(fw.address) >= sizeof ep.path) {
		log_warn("TTRPC_ADDRESS %s: path too long", fw.address);
		return -1;
	}
	snprintf(ep.path, sizeof ep.path, "%s", fw.address);
	fd = transport_connect(&ep, FORWARD_CONNECT_TIMEOUT_MS, &st);
	if (fd < 0)
		log_debug("events to containerd: %s", st.msg);
	return fd;
}

/*
 * Send one request on stream sid and wait for its answer until deadline_ms. 0 with
 * containerd's status code in *code; -1 when the connection is no good (closed, timed out,
 * garbage): the caller reconnects and sends it again.
 */
static int
forward_call(int fd, uint32_t sid, const uint8_t *req, size_t len, int64_t deadline_ms, int *code)
{
	struct frame_header h = {(uint32_t)len, sid, FRAME_TYPE_REQUEST, 0};
	uint8_t hdr[FRAME_HEADER_SIZE];
	cleanup_free uint8_t *payload = NULL;
	Ttrpc__Response *resp;
	int r;

	frame_header_pack(&h, hdr);
	if ((r = write_all_deadline(fd, hdr, sizeof hdr, deadline_ms)) < 0 ||
	    (r = write_all_deadline(fd, req, len, deadline_ms)) < 0) {
		log_debug("events to containerd: send: %s", strerror(-r));
		return -1;
	}
	for (;;) {
		if ((r = read_full_deadline(fd, hdr, sizeof hdr, deadline_ms)) < 0) {
			log_debug("events to containerd: receive: %s", strerror(-r));
			return -1;
		}
		frame_header_unpack(hdr, &h);
		if (h.length > FORWARD_RESPONSE_MAX) {
			log_warn("events to containerd: a %u byte frame, over %u: reconnecting",
			    h.length, FORWARD_RESPONSE_MAX);
			return -1;
		}
		free(payload);
		payload = xmalloc(h.length > 0 ? h.length : 1);
		if ((r = read_full_deadline(fd, payload, h.length, deadline_ms)) < 0) {
			log_debug("events to containerd: receive: %s", strerror(-r));
			return -1;
		}
		if (h.type == FRAME_TYPE_RESPONSE && h.stream_id == sid)
			break;
		log_debug("events to containerd: ignoring a frame of type %u on stream %u", h.type,
		    h.stream_id);
	}
	resp = ttrpc__response__unpack(NULL, h.length, payload);
	if (resp == NULL) {
		log_warn("events to containerd: malformed response: reconnecting");
		return -1;
	}
	*code = resp->status != NULL ? resp->status->code : 0;
	if (*code != 0)
		log_warn("events to containerd: refused with %s: %s", status_code_name(*code),
		    resp->status->message != NULL ? resp->status->message : "");
	ttrpc__response__free_unpacked(resp, NULL);
	return 0;
}

/* Locked: wait up to ms, or until forward_stop wakes us. */
static void
forward_backoff_locked(int ms)
{
	struct timespec ts;

	time_after_ms(CLOCK_REALTIME, ms, &ts);
	pthread_cond_timedwait(&fw.cond, &fw.lock, &ts);
}

/* Locked: containerd could not be reached: tell the loop once, so no Wait waits for it. */
static void
forward_unreachable_locked(void)
{
	if (fw.reachable) {
		log_warn(
		    "events to containerd (%s): unreachable, queueing and retrying", fw.address);
		fw.reachable = false;
		forward_wake_loop();
	}
}

static void *
forward_main(void *arg)
{
	int fd = -1, backoff = FORWARD_BACKOFF_MIN_MS, code = 0, r;
	bool connected;
	uint32_t sid = 1;
	struct forward_item *it;
	int64_t deadline;

	(void)arg;
	pthread_mutex_lock(&fw.lock);
	for (;;) {
		while (fw.head == NULL && !fw.stopping)
			pthread_cond_wait(&fw.cond, &fw.lock);
		if (fw.head == NULL || (fw.stopping && time_mono_ms() >= fw.flush_deadline))
			break;
		it = fw.head;
		it->in_flight = true;
		deadline = time_mono_ms() + FORWARD_CALL_TIMEOUT_MS;
		if (fw.stopping && fw.flush_deadline < deadline)
			deadline = fw.flush_deadline;
		pthread_mutex_unlock(&fw.lock);

		connected = fd < 0 && (fd = forward_connect()) >= 0;
		r = fd >= 0 ? forward_call(fd, sid, it->req, it->len, deadline, &code) : -1;
		sid += 2;

		pthread_mutex_lock(&fw.lock);
		it->in_flight = false;
		if (connected)
			fw.stats.reconnects++;
		if (r < 0) {
			if (fd >= 0) {
				close(fd);
				fd = -1;
			}
			forward_unreachable_locked();
			forward_backoff_locked(backoff);
			backoff = backoff * 2 > FORWARD_BACKOFF_MAX_MS ? FORWARD_BACKOFF_MAX_MS
								       : backoff * 2;
			continue;
		}
		if (!fw.reachable)
			log_info("events to containerd (%s): reachable again", fw.address);
		fw.reachable = true;
		backoff = FORWARD_BACKOFF_MIN_MS;
		if (code == 0)
			fw.stats.delivered++;
		else
			fw.stats.refused++;
		forward_remove_locked(NULL, it);
		forward_wake_loop();
	}
	pthread_mutex_unlock(&fw.lock);
	if (fd >= 0)
		close(fd);
	return NULL;
}

int
forward_start(struct event_base *base, void (*progress)(void), struct status *st)
{
	int r;

	if (fw.address == NULL || fw.started)
		return 0;
	fw.base = base;
	fw.progress = progress;
	fw.notify = event_new(base, -1, 0, forward_notify_cb, NULL);
	if (fw.notify == NULL)
		fatalx("forward: event_new failed");
	fw.reachable = true;
	fw.stopping = false;
	if ((r = pthread_create(&fw.thread, NULL, forward_main, NULL)) != 0) {
		event_free(fw.notify);
		fw.notify = NULL;
		return status_set(st, ST_INTERNAL, "events forwarding thread: %s", strerror(r));
	}
	fw.started = true;
	log_info("forwarding events to containerd at %s (namespace %s)", fw.address, fw.ns);
	return 0;
}

uint64_t
forward_event(const char *topic, const char *timestamp, json_t *event)
{
	struct forward_item *it, *prev, *victim;
	Ttrpc__Request rq = TTRPC__REQUEST__INIT;
	Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT, *kvs[1] = {&kv};
	uint8_t *body = NULL;
	size_t blen;
	struct status st;
	uint64_t seq;

	if (!fw.started)
		return 0;
	if (msg_pb_event_encode(topic, timestamp, fw.ns, event, &body, &blen, &st) < 0) {
		log_warn("events to containerd: %s not forwarded: %s", topic, st.msg);
		return 0;
	}
	it = xcalloc(1, sizeof *it);
	it->topic = xstrdup(topic);
	rq.service = (char *)PROTOCOL_CONTAINERD_EVENTS_SERVICE;
	rq.method = (char *)PROTOCOL_CONTAINERD_EVENTS_FORWARD;
	/* As containerd's own shims send it: the namespace in the ttrpc metadata too. */
	kv.key = "containerd-namespace-ttrpc";
	kv.value = fw.ns;
	rq.n_metadata = 1;
	rq.metadata = kvs;
	rq.payload.data = body;
	rq.payload.len = blen;
	it->len = ttrpc__request__get_packed_size(&rq);
	it->req = xmalloc(it->len);
	ttrpc__request__pack(&rq, it->req);
	free(body);

	pthread_mutex_lock(&fw.lock);
	if (fw.n >= fw.queue_max) {
		prev = NULL;
		victim = fw.head;
		if (victim != NULL && victim->in_flight) {
			prev = victim;
			victim = victim->next;
		}
		if (victim != NULL) {
			log_warn("events to containerd: %zu queued, dropping the oldest (%s)", fw.n,
			    victim->topic);
			fw.stats.dropped++;
			forward_remove_locked(prev, victim);
		}
	}
	seq = it->seq = ++fw.last_seq;
	if (fw.tail != NULL)
		fw.tail->next = it;
	else
		fw.head = it;
	fw.tail = it;
	fw.n++;
	fw.stats.queued++;
	pthread_cond_signal(&fw.cond);
	pthread_mutex_unlock(&fw.lock);
	return seq;
}

bool
forward_settled(uint64_t seq)
{
	bool r;

	if (seq == 0 || !fw.started)
		return true;
	pthread_mutex_lock(&fw.lock);
	r = seq <= fw.settled_upto || !fw.reachable;
	pthread_mutex_unlock(&fw.lock);
	return r;
}

void
forward_stop(int flush_ms)
{
	struct forward_item *it;

	if (!fw.started)
		return;
	pthread_mutex_lock(&fw.lock);
	fw.stopping = true;
	fw.flush_deadline = time_mono_ms() + (flush_ms > 0 ? flush_ms : 0);
	pthread_cond_broadcast(&fw.cond);
	pthread_mutex_unlock(&fw.lock);
	pthread_join(fw.thread, NULL);
	fw.started = false;
	while ((it = fw.head) != NULL) {
		log_warn("events to containerd: %s not delivered before exit", it->topic);
		fw.head = it->next;
		forward_item_free(it);
	}
	fw.tail = NULL;
	fw.n = 0;
	forward_settle_locked();
	event_free(fw.notify);
	fw.notify = NULL;
	log_debug("events to containerd: %llu queued, %llu delivered, %llu refused, %llu dropped",
	    (unsigned long long)fw.stats.queued, (unsigned long long)fw.stats.delivered,
	    (unsigned long long)fw.stats.refused, (unsigned long long)fw.stats.dropped);
}

void
forward_get_stats(struct forward_stats *out)
{
	pthread_mutex_lock(&fw.lock);
	*out = fw.stats;
	pthread_mutex_unlock(&fw.lock);
}
