/*
 * control-event.c: events to the shim: the subscribers, the backlog and the exit / OOM events.
 *
 * Runs on the loop thread. Owns the subscribers (a connection, as a plain pointer forgotten
 * when control.c reports the connection closed, and the stream id of its SubscribeEvents; a
 * subscriber whose connection closes or stops reading is dropped) and the backlog of events
 * published while nobody subscribed, handed to the next subscriber in order. At most
 * CONTROL_BACKLOG_MAX events wait; past that the oldest goes, with a log line.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "control.h"
#include "log.h"
#include "msg.h"
#include "stats.h"
#include "util.h"

#define CONTROL_BACKLOG_MAX 1024
#define CONTROL_SUB_LIMIT   (8u * 1024 * 1024)

/* One SubscribeEvents stream: at most one per connection. */
struct control_sub {
	LIST_ENTRY(control_sub) entry;
	struct rpc_conn *conn; /* plain pointer: forgotten in control_event_forget */
	uint32_t sid;
};

struct control_event {
	TAILQ_ENTRY(control_event) entry;
	char *buf;
	size_t len;
};

static LIST_HEAD(, control_sub) control_subs = LIST_HEAD_INITIALIZER(control_subs);
static TAILQ_HEAD(, control_event) control_backlog = TAILQ_HEAD_INITIALIZER(control_backlog);
static unsigned control_backlog_len;

/* Forget a subscriber. */
static void
control_sub_free(struct control_sub *sub)
{
	LIST_REMOVE(sub, entry);
	free(sub);
}

/*
 * Queue an event for one subscriber: 0 when queued, -1 when it was not (a connection that is
 * closing, or whose peer stopped reading and is dropped here): sub is gone on -1.
 */
static int
control_send_event(struct control_sub *sub, const char *buf, size_t len)
{
	struct rpc_conn *conn = sub->conn;

	if (rpc_conn_is_closed(conn)) {
		control_sub_free(sub);
		return -1;
	}
	if (rpc_conn_send_data(conn, sub->sid, 0, buf, len, CONTROL_SUB_LIMIT) < 0) {
		log_warn(
		    "event subscriber on fd %d stopped reading: dropping it", rpc_conn_fd(conn));
		control_sub_free(sub);
		rpc_conn_close(conn);
		return -1;
	}
	return 0;
}

/*
 * Send an event to every live subscriber; if none took it and `keep`, keep it in the backlog.
 * Notices that a reconnect makes moot are not kept (the exit-pending one: the shim asks
 * ProcessState after reconnecting), so they cannot push real exits out of a full backlog.
 */
static void
control_publish_to(const char *topic, json_t *event, bool keep)
{
	char ts[TIME_RFC3339_LEN];
	struct control_sub *sub, *next;
	struct control_event *ev;
	bool sent = false;
	size_t len;
	char *buf;

	time_rfc3339_now(ts);
	buf = msg_event_encode(topic, ts, event, &len);
	for (sub = LIST_FIRST(&control_subs); sub != NULL; sub = next) {
		next = LIST_NEXT(sub, entry);
		if (control_send_event(sub, buf, len) == 0)
			sent = true;
	}
	if (sent || !keep) {
		free(buf);
		return;
	}
	/* Nobody listens (yet, or the shim reconnects): keep it for the next subscriber. */
	if (control_backlog_len == CONTROL_BACKLOG_MAX) {
		ev = TAILQ_FIRST(&control_backlog);
		TAILQ_REMOVE(&control_backlog, ev, entry);
		log_warn("event backlog full: dropping the oldest event");
		free(ev->buf);
		free(ev);
		control_backlog_len--;
	}
	ev = xcalloc(1, sizeof *ev);
	ev->buf = buf;
	ev->len = len;
	TAILQ_INSERT_TAIL(&control_backlog, ev, entry);
	control_backlog_len++;
}

void
control_publish(const char *topic, json_t *event)
{
	control_publish_to(topic, event, true);
}

/* The body of p's exit events: the same fields for /tasks/exit and the exit-pending notice. */
static json_t *
control_exit_event(struct proc *p)
{
	char ts[TIME_RFC3339_LEN];

	time_rfc3339(&p->exited_at, ts);
	return json_pack("{s:s, s:s, s:i, s:i, s:s}", "container_id", p->c->id, "id",
	    p->exec_id[0] != '\0' ? p->exec_id : p->c->id, "pid", (int)p->pid, "exit_status",
	    p->exit_status, "exited_at", ts);
}

/*
 * Before a process's exit is published: if the kernel's OOM killer struck the container since
 * the last look, say so first (/tasks/oom), as containerd's runc shim does, so the runtime
 * knows why the process died when the exit arrives.
 */
static void
control_check_oom(struct container *c)
{
	uint64_t n;
	json_t *ev;

	if (c->oom_file == NULL || (n = stats_oom_count(c->oom_file)) <= c->oom_kills)
		return;
	c->oom_kills = n;
	log_warn_id(c->id, NULL, "out of memory: the OOM killer struck (%" PRIu64 " kill(s))", n);
	ev = json_pack("{s:s}", "container_id", c->id);
	control_publish(PROTOCOL_TOPIC_OOM, ev);
	json_decref(ev);
}

void
control_publish_exit(struct proc *p)
{
	json_t *ev;

	control_check_oom(p->c);
	ev = control_exit_event(p);

	log_debug_id(p->c->id, p->exec_id, "exit of pid %d (status %d) published", (int)p->pid,
	    p->exit_status);
	control_publish(PROTOCOL_TOPIC_EXIT, ev);
	json_decref(ev);
}

void
control_publish_exit_pending(struct proc *p)
{
	json_t *ev = control_exit_event(p);

	log_debug_id(p->c->id, p->exec_id,
	    "pid %d reaped (status %d) with output still draining: %s published", (int)p->pid,
	    p->exit_status, PROTOCOL_TOPIC_EXIT_PENDING);
	control_publish_to(PROTOCOL_TOPIC_EXIT_PENDING, ev, false);
	json_decref(ev);
}

/* SubscribeEvents: make this connection the event stream and drain the backlog. */
void
control_subscribe(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	struct control_sub *sub;
	struct control_event *ev;

	LIST_FOREACH (sub, &control_subs, entry) {
		if (sub->conn == conn) {
			struct status st;
			status_set(&st, ST_ALREADY_EXISTS, "this connection already subscribed");
			rpc_conn_respond_status(conn, sid, &st);
			return;
		}
	}
	rpc_conn_respond(conn, sid, ST_OK, "", NULL);
	sub = xcalloc(1, sizeof *sub);
	sub->conn = conn;
	sub->sid = sid;
	LIST_INSERT_HEAD(&control_subs, sub, entry);
	/* An event this subscriber could not take stays at the head for the next one. */
	while ((ev = TAILQ_FIRST(&control_backlog)) != NULL) {
		if (control_send_event(sub, ev->buf, ev->len) < 0)
			break;
		TAILQ_REMOVE(&control_backlog, ev, entry);
		control_backlog_len--;
		free(ev->buf);
		free(ev);
	}
}

void
control_event_forget(struct rpc_conn *conn)
{
	struct control_sub *sub, *next;

	for (sub = LIST_FIRST(&control_subs); sub != NULL; sub = next) {
		next = LIST_NEXT(sub, entry);
		if (sub->conn == conn)
			control_sub_free(sub);
	}
}

void
control_event_clear(void)
{
	struct control_event *ev;

	while ((ev = TAILQ_FIRST(&control_backlog)) != NULL) {
		TAILQ_REMOVE(&control_backlog, ev, entry);
		free(ev->buf);
		free(ev);
	}
	control_backlog_len = 0;
}
