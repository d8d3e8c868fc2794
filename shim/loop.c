/*
 * loop.c: the event loop thread and the daemon's life cycle.
 *
 * The loop thread (the main thread after start-up) owns the event_base, every client
 * connection (an rpc_conn each, wrapped in a loop_client here), and through task*.c and
 * events.c all shim state. The accept thread hands it descriptors (accept.c); workers hand
 * it completions (worker.c). A connection that has not sent one whole request within
 * handshake_timeout_ms is closed, so idle or half-frame clients cost a descriptor for a
 * bounded time and never anyone's latency (seed 004, SPEC 5.4).
 *
 * Shutdown (SIGTERM, SIGINT, or the Shutdown method) runs in a fixed order on the loop
 * thread: stop accepting (join the accept thread), fail the guest link so blocked calls
 * return, answer parked calls and tear down stdio (task_shutdown), close every client after
 * its queued responses flush, join the workers (running their last completions), then leave
 * the loop once every connection has closed (or after a second), remove the socket and pid
 * file and return.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/thread.h>

#include "seccomp.h"
#include "shim.h"
#include "util.h"

#define LOOP_CLOSE_GRACE_MS 1000

struct shim shim;

struct loop_client {
	struct rpc_conn *conn;
	struct event *handshake; /* closes a connection that never sends a request */
	bool greeted;
	struct loop_client *prev, *next;
};

static struct {
	struct event *accept_ev;
	struct event *sig_term, *sig_int;
	struct event *grace;
	struct loop_client *clients;
	unsigned nclients;
	bool exiting;
} lp;

static void loop_on_request(
    struct rpc_conn *c, uint32_t stream_id, uint8_t flags, struct msg_request *req, void *arg);
static void loop_on_close(struct rpc_conn *c, void *arg);

static const struct rpc_server_ops loop_rpc_ops = {
    .on_request = loop_on_request,
    .on_close = loop_on_close,
};

static void
loop_handshake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop_client *lc = arg;

	if (lc->greeted)
		return;
	log_warn("closing connection fd %d: no request within %u ms", rpc_conn_fd(lc->conn),
	    shim.cfg.handshake_timeout_ms);
	rpc_conn_close(lc->conn);
}

/* Take every fd the accept thread queued and wrap it in an rpc_conn. */
static void
loop_accept_cb(evutil_socket_t unused, short what, void *arg)
{
	struct timeval tv;
	struct loop_client *lc;
	int fd;

	while ((fd = accept_take()) >= 0) {
		if (lp.exiting) {
			close(fd);
			accept_conn_closed();
			continue;
		}
		lc = xcalloc(1, sizeof *lc);
		lc->conn =
		    rpc_conn_new(shim.base, fd, shim.cfg.max_message_bytes, &loop_rpc_ops, lc);
		if (lc->conn == NULL) {
			log_error("rpc_conn_new failed for fd %d", fd);
			close(fd);
			accept_conn_closed();
			free(lc);
			continue;
		}
		lc->handshake = evtimer_new(shim.base, loop_handshake_cb, lc);
		tv.tv_sec = shim.cfg.handshake_timeout_ms / 1000;
		tv.tv_usec = (shim.cfg.handshake_timeout_ms % 1000) * 1000;
		evtimer_add(lc->handshake, &tv);
		lc->next = lp.clients;
		if (lp.clients != NULL)
			lp.clients->prev = lc;
		lp.clients = lc;
		lp.nclients++;
		log_debug("new connection fd %d (%u open)", fd, lp.nclients);
	}
}

void
loop_notify_accept(void)
{
	event_active(lp.accept_ev, EV_READ, 0);
}

static void
loop_on_request(
    struct rpc_conn *c, uint32_t stream_id, uint8_t flags, struct msg_request *req, void *arg)
{
	struct loop_client *lc = arg;

	if (!lc->greeted) {
		lc->greeted = true;
		evtimer_del(lc->handshake);
	}
	if (lp.exiting) {
		rpc_conn_respond(c, stream_id, ST_UNAVAILABLE, "the shim is shutting down", NULL);
		msg_request_clear(req);
		return;
	}
	task_dispatch(c, stream_id, flags, req);
}

static void
loop_on_close(struct rpc_conn *c, void *arg)
{
	struct loop_client *lc = arg;
	struct timeval zero = {0, 0};

	if (lc->prev != NULL)
		lc->prev->next = lc->next;
	else
		lp.clients = lc->next;
	if (lc->next != NULL)
		lc->next->prev = lc->prev;
	lp.nclients--;
	event_free(lc->handshake);
	free(lc);
	accept_conn_closed();
	/* The conn drops its loop reference itself right after this callback. */
	if (lp.exiting && lp.nclients == 0)
		event_base_loopexit(shim.base, &zero);
}

static void
loop_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	log_warn("%u connection(s) still flushing after %d ms: closing", lp.nclients,
	    LOOP_CLOSE_GRACE_MS);
	event_base_loopbreak(shim.base);
}

/* The shutdown sequence of the design paragraph (loop thread). */
static void
loop_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop_client *lc, *next;
	struct timeval tv = {LOOP_CLOSE_GRACE_MS / 1000, (LOOP_CLOSE_GRACE_MS % 1000) * 1000};
	struct timeval zero = {0, 0};

	log_info("shutting down");
	accept_stop();
	guest_shutdown();
	task_shutdown();
	events_shutdown();
	for (lc = lp.clients; lc != NULL; lc = next) {
		next = lc->next;
		rpc_conn_close(lc->conn);
	}
	worker_shutdown();
	if (lp.nclients == 0) {
		event_base_loopexit(shim.base, &zero);
		return;
	}
	lp.grace = evtimer_new(shim.base, loop_grace_cb, NULL);
	evtimer_add(lp.grace, &tv);
}

void
loop_request_exit(void)
{
	struct timeval zero = {0, 0};

	if (lp.exiting)
		return;
	lp.exiting = true;
	shim.shutting_down = true;
	if (event_base_once(shim.base, -1, EV_TIMEOUT, loop_exit_cb, NULL, &zero) < 0)
		fatalx("event_base_once");
}

static void
loop_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	log_info("received signal %d", (int)sig);
	loop_request_exit();
}

int
loop_run(int listen_fd, struct status *st)
{
	int r = 0;

	if (evthread_use_pthreads() < 0)
		return status_set(st, ST_INTERNAL, "evthread_use_pthreads failed");
	shim.base = event_base_new();
	if (shim.base == NULL)
		return status_set(st, ST_INTERNAL, "event_base_new failed");
	log_route_libevent();
	lp.accept_ev = event_new(shim.base, -1, EV_READ, loop_accept_cb, NULL);
	lp.sig_term = evsignal_new(shim.base, SIGTERM, loop_signal_cb, NULL);
	lp.sig_int = evsignal_new(shim.base, SIGINT, loop_signal_cb, NULL);
	if (lp.accept_ev == NULL || lp.sig_term == NULL || lp.sig_int == NULL ||
	    evsignal_add(lp.sig_term, NULL) < 0 || evsignal_add(lp.sig_int, NULL) < 0)
		fatalx("loop: cannot set up events");

	if (worker_init(shim.base, shim.cfg.workers, 64, st) < 0 || guest_init(st) < 0 ||
	    accept_start(listen_fd, &shim.cfg, st) < 0) {
		r = -1;
		goto out;
	}
	/* Every thread exists now: confine them all (TSYNC) before serving anyone. */
	if (shim.cfg.seccomp && seccomp_confine(SECCOMP_PROFILE_SHIM, st) < 0) {
		r = -1;
		goto out;
	}
	log_info("vmshim %s serving on %s (pid %ld, agent %s, %u workers, seccomp %s)",
	    SHIM_VERSION, shim.socket_path, (long)shim.pid, shim.cfg.vm_vsock, shim.cfg.workers,
	    seccomp_state());
	event_base_dispatch(shim.base);
out:
	if (!lp.exiting) {
		/* Start-up failed half-way: same teardown, without a loop to run it. */
		lp.exiting = true;
		shim.shutting_down = true;
		accept_stop();
		guest_shutdown();
		task_shutdown();
		worker_shutdown();
	}
	if (lp.grace != NULL)
		event_free(lp.grace);
	event_free(lp.accept_ev);
	event_free(lp.sig_term);
	event_free(lp.sig_int);
	event_base_free(shim.base);
	shim.base = NULL;
	log_info("stopped");
	return r;
}
