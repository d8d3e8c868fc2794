/*
 * guest.c: the link to the guest agent's control port (docs/PROTOCOL.md).
 *
 * A struct guest is one connection to the agent: an rpc_client plus the loop's read event on
 * its fd. It is reference counted (so no thread can use a
 * descriptor another has closed, or a reused number): the loop holds one reference while its read
 * event exists, the published "current link" holds one, and every worker call holds one
 * between guest_get() and guest_put(). The last reference frees the rpc_client, which closes
 * the fd, so no descriptor is ever closed under a worker that is still writing to it.
 *
 * Threads: connecting (transport_connect with retries and back-off, bounded by
 * vm.connect_timeout_ms) and subscribing run as worker jobs; the loop thread reads the fd and
 * feeds the rpc_client, so the agent's events (rpc_client_subscribe's on_data) run on the loop
 * thread and reach the task table through the guest_ops given to guest_init (shim.h): this
 * file knows nothing of tasks. When the agent closes, resets or sends garbage,
 * the loop fails the rpc_client (in-flight calls turn UNAVAILABLE), unpublishes the link and
 * schedules a reconnect with exponential back-off. gs.lock guards `cur` and `stopping`;
 * everything else here is loop-thread only.
 *
 * A frame from the agent that has started must finish within guest_frame_bound_ms()
 * (request_timeout_ms, at least GUEST_FRAME_MIN_MS): no call waits longer than that for a
 * whole response, and the decoder cannot deliver any later frame before this one ends, so an
 * agent that trickles a frame forever would otherwise time out every later call on the link.
 * The check is a per-link libevent timer (`stall`) on the loop thread: after each read, if the
 * rpc_client reports an unfinished frame (rpc_client_partial_frame, which stamps the frame's
 * start once, only when a read ends inside one) and the timer is not armed, it is armed for
 * the rest of that frame's bound; when a read leaves no frame unfinished it is cleared. So a
 * response that arrives within one read costs nothing, and a large one a timer per frame, not
 * per byte; a large frame arriving steadily is never cut, only one still unfinished after the
 * bound. When the timer fires on a frame still unfinished past its bound (it re-arms for a
 * newer frame that started meanwhile), that is a protocol failure of the link: guest_link_down
 * logs it once at warning with the figures, fails in-flight calls UNAVAILABLE, drops the
 * loop's and the published references (the conn owner closes the fd once, at the last one)
 * and reconnects as after any agent loss. The timer is freed with the read event, in
 * guest_link_down; a link going down during shutdown is logged at info, not as a fault.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "shim.h"
#include "util.h"

#define GUEST_READ_CHUNK     65536
#define GUEST_RETRY_MIN_MS   50
#define GUEST_RETRY_MAX_MS   1000
#define GUEST_ATTEMPT_MAX_MS 200
#define GUEST_FRAME_MIN_MS   1000 /* floor of the bound on one agent frame (a tiny timeout) */

struct guest {
	atomic_uint refs;
	struct rpc_client *client;
	struct event *ev;    /* loop thread; holds one reference while set */
	struct event *stall; /* loop thread; the unfinished-frame timer, freed with ev */
	bool stall_armed;    /* loop thread */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct guest *cur; /* the published link (one reference) or NULL; under lock */
	bool stopping;	   /* under lock */

	/* Loop thread only. */
	struct event *retry;
	int retry_ms;
	bool connecting;
	bool ever_connected;
	bool warned_down;
	struct guest *pending;	     /* connected, not yet subscribed (no reference of its own) */
	const struct guest_ops *ops; /* the task layer's callbacks, set by guest_init */
} gs = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .retry_ms = GUEST_RETRY_MIN_MS,
};

static void guest_schedule_connect(void);

static struct guest *
guest_ref(struct guest *g)
{
	atomic_fetch_add(&g->refs, 1);
	return g;
}

/* Drop n references at once; the last one frees the link (its client and fd). */
static void
guest_put_n(struct guest *g, unsigned n)
{
	if (g == NULL)
		return;
	if (atomic_fetch_sub(&g->refs, n) == n) {
		rpc_client_free(g->client);
		free(g);
	}
}

void
guest_put(struct guest *g)
{
	guest_put_n(g, 1);
}

struct guest *
guest_get(int wait_ms, struct status *st)
{
	struct guest *g = NULL;
	struct timespec ts;

	if (atomic_load(&shim.vm_gone)) {
		status_set(st, ST_UNAVAILABLE, "the group's VM is gone");
		return NULL;
	}
	pthread_mutex_lock(&gs.lock);
	if (gs.cur == NULL && wait_ms > 0 && !gs.stopping) {
		time_after_ms(CLOCK_MONOTONIC, wait_ms, &ts);
		while (gs.cur == NULL && !gs.stopping)
			if (pthread_cond_timedwait(&gs.cond, &gs.lock, &ts) == ETIMEDOUT)
				break;
	}
	if (gs.cur != NULL && !rpc_client_failed(gs.cur->client))
		g = guest_ref(gs.cur);
	pthread_mutex_unlock(&gs.lock);
	if (g == NULL)
		status_set(
		    st, ST_UNAVAILABLE, "guest agent %s is not connected", shim.cfg.vm_vsock);
	return g;
}

bool
guest_connected(void)
{
	bool up;

	pthread_mutex_lock(&gs.lock);
	up = gs.cur != NULL;
	pthread_mutex_unlock(&gs.lock);
	return up;
}

int
guest_call(const char *method, json_t *payload, int timeout_ms, bool wait, json_t **resp,
    struct status *st)
{
	struct guest *g;
	int wait_ms = 0, r;

	if (wait) {
		wait_ms = (int)shim.cfg.connect_timeout_ms;
		if (timeout_ms > 0 && timeout_ms < wait_ms)
			wait_ms = timeout_ms;
	}
	g = guest_get(wait_ms, st);
	if (g == NULL)
		return -1;
	r = rpc_client_call(
	    g->client, PROTOCOL_AGENT_SERVICE, method, payload, timeout_ms, resp, st);
	guest_put(g);
	if (r < 0)
		status_wrap(st, "agent %s", method);
	return r;
}

/* Loop thread: the link is finished; fail its calls, unpublish it, reconnect later. */
static void
guest_link_down(struct guest *g, int code, const char *why)
{
	bool was_cur = false, stopping;

	if (g->ev == NULL)
		return;
	event_free(g->ev);
	g->ev = NULL;
	event_free(g->stall);
	g->stall = NULL;
	g->stall_armed = false;
	rpc_client_fail(g->client, code, why);
	pthread_mutex_lock(&gs.lock);
	if (gs.cur == g) {
		gs.cur = NULL;
		was_cur = true;
	}
	stopping = gs.stopping;
	pthread_mutex_unlock(&gs.lock);
	/* A shutdown is not a fault. */
	if (stopping)
		log_info("agent link closed: %s", why);
	else
		log_warn("agent link lost: %s", why);
	/* The read event's reference, and the published link's when it was current. */
	guest_put_n(g, was_cur ? 2 : 1);
	if (was_cur) {
		char msg[STATUS_MSG_MAX];

		snprintf(msg, sizeof msg, "agent link lost: %s", why);
		gs.ops->lost(msg);
	}
	gs.retry_ms = GUEST_RETRY_MIN_MS;
	guest_schedule_connect();
}

/* How long one frame from the agent may take, first byte to last (see the top of the file). */
static int
guest_frame_bound_ms(void)
{
	uint32_t ms = shim.cfg.request_timeout_ms;

	return ms < GUEST_FRAME_MIN_MS ? GUEST_FRAME_MIN_MS : (int)ms;
}

/* Loop thread: arm the stall timer for the rest of pf's frame's bound. */
static void
guest_stall_arm(struct guest *g, const struct rpc_partial_frame *pf)
{
	int64_t left = pf->started_ms + guest_frame_bound_ms() - time_mono_ms();
	struct timeval tv;

	if (left < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	if (evtimer_add(g->stall, &tv) < 0)
		fatalx("guest: evtimer_add");
	g->stall_armed = true;
}

/* Loop thread, after a read: watch an unfinished frame, forget a finished one. */
static void
guest_stall_watch(struct guest *g)
{
	struct rpc_partial_frame pf;

	if (g->stall == NULL)
		return; /* the link went down while feeding */
	if (rpc_client_partial_frame(g->client, &pf)) {
		if (!g->stall_armed)
			guest_stall_arm(g, &pf);
	} else if (g->stall_armed) {
		evtimer_del(g->stall);
		g->stall_armed = false;
	}
}

static int guest_read_once(struct guest *g);

/* Loop thread: the stall timer fired; a frame still unfinished past its bound ends the link. */
static void
guest_stall_cb(evutil_socket_t fd, short what, void *arg)
{
	struct guest *g = arg;
	struct rpc_partial_frame pf;
	char why[STATUS_MSG_MAX];
	int64_t took, judged;
	int bound = guest_frame_bound_ms();

	(void)fd;
	(void)what;
	g->stall_armed = false;
	if (!rpc_client_partial_frame(g->client, &pf))
		return;
	/*
	 * Bytes of this frame already waiting in the socket (the loop was busy when both the
	 * timer and the read became due) are not a stall: take them before judging. Bounded by
	 * the frame's size: the loop ends when this frame completes or the socket is empty.
	 */
	judged = pf.started_ms;
	guest_ref(g);
	while (rpc_client_partial_frame(g->client, &pf) && pf.started_ms == judged) {
		int r = guest_read_once(g);

		if (r < 0) {
			guest_put(g);
			return; /* the link went down */
		}
		if (r == 0)
			break;
	}
	guest_put(g);
	if (!rpc_client_partial_frame(g->client, &pf))
		return;
	took = time_mono_ms() - pf.started_ms;
	if (took < bound) {
		guest_stall_arm(g, &pf); /* a newer frame, started after the one we armed for */
		return;
	}
	if (pf.total != 0)
		snprintf(why, sizeof why,
		    "protocol error: a frame from the agent did not finish within %d ms "
		    "(request_timeout_ms): %zu of %zu bytes on stream %u after %lld ms",
		    bound, pf.received, pf.total, pf.stream_id, (long long)took);
	else
		snprintf(why, sizeof why,
		    "protocol error: a frame from the agent did not finish within %d ms "
		    "(request_timeout_ms): %zu of a %d-byte header after %lld ms",
		    bound, pf.received, FRAME_HEADER_SIZE, (long long)took);
	guest_link_down(g, ST_UNAVAILABLE, why);
}

/*
 * Loop thread: one read of the agent link, fed to the decoder. 1 when bytes came, 0 when the
 * socket had none, -1 when the link went down (closed, failed or a malformed frame).
 */
static int
guest_read_once(struct guest *g)
{
	static uint8_t buf[GUEST_READ_CHUNK];
	ssize_t n;
	int r = 1;

	/*
	 * MSG_DONTWAIT: the link's fd is blocking (the workers' sends), and the stall timer reads
	 * without knowing whether anything is there.
	 */
	n = recv(event_get_fd(g->ev), buf, sizeof buf, MSG_DONTWAIT);
	if (n > 0) {
		/* Hold a reference: on_data may run task code, which must not free g. */
		guest_ref(g);
		if (rpc_client_feed(g->client, buf, (size_t)n) < 0) {
			guest_link_down(g, ST_UNAVAILABLE, "agent sent a malformed frame");
			r = -1;
		} else {
			guest_stall_watch(g);
		}
		guest_put(g);
		return r;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == 0)
		guest_link_down(g, ST_UNAVAILABLE, "agent closed the connection");
	else
		guest_link_down(g, ST_UNAVAILABLE, strerror(errno));
	return -1;
}

/* Loop thread: bytes from the agent go to the rpc_client; EOF or garbage ends the link. */
static void
guest_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	guest_read_once(arg);
}

/* Loop thread (the feeding thread): one event from the agent's SubscribeEvents stream. */
static void
guest_on_event(void *arg, const uint8_t *buf, size_t len)
{
	struct msg_event ev;
	struct status st;

	if (buf == NULL)
		return; /* the transport failed; guest_link_down does the rest */
	if (msg_event_decode(buf, len, &ev, &st) < 0) {
		log_warn("agent event: %s", st.msg);
		return;
	}
	gs.ops->event(ev.topic, ev.event);
	msg_event_clear(&ev);
}

struct guest_job {
	struct guest *g; /* subscribe job: a reference */
	int fd;		 /* connect job: the connected fd or -1 */
	struct status st;
};

/* Worker: subscribe to the agent's events, then ping it for the log. */
static void
guest_subscribe_run(void *arg)
{
	struct guest_job *j = arg;
	cleanup_json json_t *req = json_object();
	cleanup_json json_t *pong = NULL;
	int timeout = (int)shim.cfg.connect_timeout_ms;

	if (rpc_client_subscribe(j->g->client, PROTOCOL_AGENT_SERVICE, "SubscribeEvents", req,
		timeout, guest_on_event, NULL, &j->st) < 0) {
		status_wrap(&j->st, "SubscribeEvents");
		return;
	}
	if (rpc_client_call(
		j->g->client, PROTOCOL_AGENT_SERVICE, "Ping", req, timeout, &pong, &j->st) < 0) {
		status_wrap(&j->st, "Ping");
		return;
	}
	log_info("connected to agent %s: version %.*s, pid %lld, runner %.*s", shim.cfg.vm_vsock,
	    LOG_STR_MAX, json_string_value(json_object_get(pong, "version")) ?: "?",
	    (long long)json_integer_value(json_object_get(pong, "pid")), LOG_STR_MAX,
	    json_string_value(json_object_get(pong, "runner")) ?: "?");
	status_clear(&j->st);
}

/* Loop: the link is subscribed: publish it so workers can call. */
static void
guest_subscribe_done(void *arg)
{
	struct guest_job *j = arg;
	struct guest *g = j->g;

	/* A newer link may be pending by now (this one went down meanwhile): leave it be. */
	if (gs.pending == g)
		gs.pending = NULL;
	if (j->st.code == ST_OK && g->ev != NULL && !shim.shutting_down) {
		pthread_mutex_lock(&gs.lock);
		gs.cur = guest_ref(g);
		pthread_cond_broadcast(&gs.cond);
		pthread_mutex_unlock(&gs.lock);
		gs.ever_connected = true;
		gs.warned_down = false;
		/* Exits published while the link was down may be lost: ask about them. */
		gs.ops->resync();
	} else if (g->ev != NULL) {
		guest_link_down(g, ST_UNAVAILABLE, j->st.msg);
	}
	guest_put(g);
	free(j);
}

/* Worker: connect to the agent, retrying with back-off until connect_timeout_ms. */
static void
guest_connect_run(void *arg)
{
	struct guest_job *j = arg;
	int64_t deadline = time_mono_ms() + shim.cfg.connect_timeout_ms;
	int delay = 10, left;

	for (;;) {
		left = (int)(deadline - time_mono_ms());
		if (left > GUEST_ATTEMPT_MAX_MS * 10)
			left = GUEST_ATTEMPT_MAX_MS * 10;
		if (left <= 0)
			break;
		j->fd = transport_connect(&shim.cfg.agent_ep, left, &j->st);
		if (j->fd >= 0)
			return;
		pthread_mutex_lock(&gs.lock);
		if (gs.stopping) {
			pthread_mutex_unlock(&gs.lock);
			return;
		}
		pthread_mutex_unlock(&gs.lock);
		if (time_mono_ms() + delay >= deadline)
			break;
		usleep((useconds_t)delay * 1000);
		delay = delay * 2 > 500 ? 500 : delay * 2;
	}
}

/* Loop: wrap the new fd in an rpc_client read by the loop, then subscribe on a worker. */
static void
guest_connect_done(void *arg)
{
	struct guest_job *j = arg;
	struct guest *g;
	struct status st;

	gs.connecting = false;
	if (shim.shutting_down) {
		if (j->fd >= 0)
			close(j->fd);
		free(j);
		return;
	}
	if (j->fd < 0) {
		if (!gs.warned_down)
			log_warn(
			    "cannot reach agent %s: %s (retrying)", shim.cfg.vm_vsock, j->st.msg);
		gs.warned_down = true;
		free(j);
		gs.retry_ms =
		    gs.retry_ms * 2 > GUEST_RETRY_MAX_MS ? GUEST_RETRY_MAX_MS : gs.retry_ms * 2;
		guest_schedule_connect();
		return;
	}
	g = xcalloc(1, sizeof *g);
	atomic_init(&g->refs, 1);
	g->client = rpc_client_new(j->fd, shim.cfg.max_message_bytes);
	g->ev = event_new(shim.base, j->fd, EV_READ | EV_PERSIST, guest_read_cb, g);
	g->stall = evtimer_new(shim.base, guest_stall_cb, g);
	if (g->ev == NULL || g->stall == NULL || event_add(g->ev, NULL) < 0)
		fatalx("guest: event_new");
	j->fd = -1;
	j->g = guest_ref(g);
	gs.pending = g;
	status_clear(&j->st);
	if (worker_submit(guest_subscribe_run, guest_subscribe_done, j, &st) < 0) {
		gs.pending = NULL;
		guest_put(g);
		free(j);
		guest_link_down(g, ST_UNAVAILABLE, st.msg);
	}
}

static void
guest_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct guest_job *j;
	struct status st;

	if (shim.shutting_down || gs.connecting)
		return;
	j = xcalloc(1, sizeof *j);
	j->fd = -1;
	gs.connecting = true;
	if (worker_submit(guest_connect_run, guest_connect_done, j, &st) < 0) {
		gs.connecting = false;
		free(j);
		guest_schedule_connect();
	}
}

/* Loop thread: try to connect after the current back-off. */
static void
guest_schedule_connect(void)
{
	struct timeval tv = {gs.retry_ms / 1000, (gs.retry_ms % 1000) * 1000};

	if (shim.shutting_down || atomic_load(&shim.vm_gone))
		return;
	evtimer_add(gs.retry, &tv);
}

int
guest_init(const struct guest_ops *ops, struct status *st)
{
	pthread_condattr_t ca;
	struct timeval zero = {0, 0};

	gs.ops = ops;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&gs.cond, &ca);
	pthread_condattr_destroy(&ca);
	gs.retry = evtimer_new(shim.base, guest_retry_cb, NULL);
	if (gs.retry == NULL)
		return status_set(st, ST_INTERNAL, "guest: evtimer_new failed");
	evtimer_add(gs.retry, &zero);
	return 0;
}

void
guest_shutdown(void)
{
	struct guest *g;

	pthread_mutex_lock(&gs.lock);
	gs.stopping = true;
	g = gs.cur;
	pthread_cond_broadcast(&gs.cond);
	pthread_mutex_unlock(&gs.lock);
	if (gs.retry != NULL) {
		event_free(gs.retry);
		gs.retry = NULL;
	}
	if (g != NULL)
		guest_link_down(g, ST_UNAVAILABLE, "the shim is shutting down");
	if (gs.pending != NULL)
		guest_link_down(gs.pending, ST_UNAVAILABLE, "the shim is shutting down");
}
