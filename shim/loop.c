/*
 * loop.c: the event loop thread and the daemon's life cycle.
 *
 * The loop thread (the main thread after start-up) owns the event_base, every client
 * connection (an rpc_conn each, wrapped in a loop_client here), and through task*.c and
 * events.c all shim state. The accept thread hands it descriptors (accept.c); workers hand
 * it completions (worker.c). A connection that has not sent one complete frame within
 * handshake_timeout_ms is closed, so idle or half-frame clients cost a descriptor for a
 * bounded time and never anyone's latency (docs/CONTRACT.md 5.4). Any complete frame makes a
 * client active, even one the RPC layer rejects (bad JSON, an even stream id, an oversized
 * payload): it got an answer and may send the next; the timer reads the conn's frame count
 * when it fires, so the request path pays nothing. When a connection closes, the Waits it
 * parked and its event subscriptions are freed at once (task_conn_closed,
 * events_conn_closed) instead of waiting for the process to exit.
 *
 * Shutdown (SIGTERM, SIGINT, or the Shutdown method) runs in a fixed order on the loop
 * thread: stop accepting (join the accept thread), fail the guest link so blocked calls
 * return, answer parked calls and tear down stdio (task_shutdown), close every client after
 * its queued responses flush, join the workers (running their last completions), then leave
 * the loop once every connection has closed (or after a second), remove the socket and pid
 * file and return.
 *
 * The VM objects (shim.qmp, shim.disks, shim.bringup: vm.h) are created here before the
 * workers start and freed at the very end of loop_run, after the workers are joined, since
 * only workers use them.
 */
#include "config.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/thread.h>

#include "confine.h"
#include "forward.h"
#include "shim.h"
#include "util.h"

#define LOOP_CLOSE_GRACE_MS 1000
/* How long events still queued for containerd may take to go out at exit. */
#define LOOP_FORWARD_FLUSH_MS 2000

struct shim shim;

struct loop_client {
	struct rpc_conn *conn;
	struct event *handshake; /* closes a connection that never sends a complete frame */
	bool greeted;		 /* a request arrived: the timer is off */
	struct loop_client *prev, *next;
};

static struct {
	struct event *accept_ev;
	struct event *sig_term, *sig_int;
	struct event *sig_chld; /* vm.launch "qemu": QEMU or its vsock backend ended */
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

/* handshake_timeout_ms after accept: close the connection unless it sent a complete frame. */
static void
loop_handshake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop_client *lc = arg;

	if (lc->greeted || rpc_conn_frames_received(lc->conn) > 0)
		return;
	log_warn("closing connection fd %d: no complete frame within %u ms", rpc_conn_fd(lc->conn),
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

/* Accept thread (accept_start's notify): a new fd is queued; wake the loop. */
static void
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
	unsigned waits, subs;

	/* Nobody is left to answer: free what this connection parked now, not at exit. */
	waits = task_conn_closed(c);
	subs = events_conn_closed(c);
	if (waits > 0 || subs > 0)
		log_debug("connection closed: freed %u parked Wait(s) and %u subscription(s)",
		    waits, subs);
	if (lc->prev != NULL)
		lc->prev->next = lc->next;
	else
		lp.clients = lc->next;
	if (lc->next != NULL)
		lc->next->prev = lc->prev;
	lp.nclients--;
	/* Its fd is already closed: tests wait for this line before counting descriptors. */
	log_debug("connection closed (%u open)", lp.nclients);
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
	/* Before the agent link goes: a job it frees must find the shim already stopping. */
	worker_stop_begin();
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

/*
 * SIGCHLD (only QEMU and vmshim-vsock are our children by then): the launched VM is gone.
 * Tasks are reported exited and the shim keeps serving; a VM without its backend is of no
 * use, so QEMU is killed too (reaped at its own SIGCHLD).
 */
static void
loop_child_cb(evutil_socket_t sig, short what, void *arg)
{
	char why[128];

	(void)sig;
	(void)what;
	(void)arg;
	while (vm_qemu_reap(why, sizeof why)) {
		if (atomic_load(&shim.vm_gone)) {
			log_info("microVM: %s", why);
			continue;
		}
		atomic_store(&shim.vm_gone, true);
		log_error("microVM gone: %s: every task is reported exited (255)", why);
		vm_qemu_kill_all();
		if (!lp.exiting)
			task_vm_lost(why);
	}
}

/* Create the VM objects from the configuration (before any worker exists). */
static void
loop_vm_new(void)
{
	shim.bringup = vm_bringup_new(shim.cfg.confidential);
	if (shim.cfg.vm_qmp[0] == '\0') {
		log_info("vm.qmp is not set: block rootfs hot-add is off");
		return;
	}
	/* QMP connects lazily, on a worker: nothing here blocks or opens a descriptor. */
	shim.qmp = qmp_new(shim.cfg.vm_qmp, (int)shim.cfg.connect_timeout_ms);
	shim.disks = vm_disks_new(shim.qmp, (const char *const *)shim.cfg.hotplug_ports,
	    shim.cfg.n_hotplug_ports, (int)shim.cfg.unplug_timeout_ms, 0);
	log_info("hot-add through QMP %s on %zu port(s), unplug timeout %u ms, confidential %s",
	    shim.cfg.vm_qmp, shim.cfg.n_hotplug_ports, shim.cfg.unplug_timeout_ms,
	    shim.cfg.confidential ? "yes" : "no");
}

/* Free the VM objects; the workers, their only users, have been joined. */
static void
loop_vm_free(void)
{
	vm_disks_free(shim.disks);
	shim.disks = NULL;
	qmp_free(shim.qmp);
	shim.qmp = NULL;
	vm_bringup_free(shim.bringup);
	shim.bringup = NULL;
}

int
loop_run(int listen_fd, int ready_fd, struct status *st)
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

	if (shim.cfg.vm_launch == VM_LAUNCH_QEMU) {
		lp.sig_chld = evsignal_new(shim.base, SIGCHLD, loop_child_cb, NULL);
		if (lp.sig_chld == NULL || evsignal_add(lp.sig_chld, NULL) < 0)
			fatalx("loop: cannot watch SIGCHLD");
		/* A child that ended before the handler was in place. */
		loop_child_cb(SIGCHLD, EV_SIGNAL, NULL);
	}
	loop_vm_new();
	task_init(loop_request_exit);
	if (worker_init(shim.base, shim.cfg.workers, 64, st) < 0 ||
	    guest_init(&task_guest_ops, st) < 0 ||
	    forward_start(shim.base, task_forward_progress, st) < 0 ||
	    accept_start(listen_fd, &shim.cfg, loop_notify_accept, st) < 0) {
		r = -1;
		goto out;
	}
	/* Every thread exists now: confine them all (TSYNC) before serving anyone. */
	if (shim.cfg.seccomp && confine_apply(CONFINE_PROFILE_SHIM, st) < 0) {
		r = -1;
		goto out;
	}
	log_info("vmshim %s serving on %s (pid %ld, agent %s, %u workers, seccomp %s)",
	    SHIM_VERSION, shim.socket_path, (long)shim.pid, shim.cfg.vm_vsock, shim.cfg.workers,
	    confine_state());
	/* Start-up fully succeeded: only now may `start` print the address (main.c). */
	if (ready_fd >= 0) {
		if (write_all(ready_fd, "R", 1) < 0) {
			/* The parent is gone; nothing to tell. */
		}
		close(ready_fd);
	}
#ifdef __GLIBC__
	/*
	 * Give back the heap start-up freed (mostly libseccomp's filter compile): about 200 kB
	 * of the idle RSS (docs/PERFORMANCE.md). After the readiness report, off start's path.
	 */
	malloc_trim(0);
#endif
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
	/* The last events (the deletes of the way out) get a bounded chance to reach containerd. */
	forward_stop(LOOP_FORWARD_FLUSH_MS);
	if (lp.grace != NULL)
		event_free(lp.grace);
	event_free(lp.accept_ev);
	event_free(lp.sig_term);
	event_free(lp.sig_int);
	if (lp.sig_chld != NULL)
		event_free(lp.sig_chld);
	event_base_free(shim.base);
	shim.base = NULL;
	loop_vm_free();
	log_info("stopped");
	return r;
}
