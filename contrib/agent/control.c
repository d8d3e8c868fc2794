/*
 * control.c: the Agent service (PROTOCOL.md section 2): the method table and its handlers.
 *
 * Runs on the loop thread only. Owns the list of live control connections (plain pointers,
 * forgotten in on_close, as rpc-server.c allows), the event subscribers (a connection and a
 * stream id; dropped when their connection closes or stops reading) and the backlog of events
 * published while nobody subscribed. Each method is one entry of control_methods[]; a handler
 * validates every field with the msg_get_* accessors (the error names the field), then either
 * answers at once or hands a struct control_call (holding references on the connection, the
 * container and the process) to the runner, whose callback answers and frees it. A parked
 * StartProcess (waiting for its streams) keeps a connection reference in the struct proc.
 *
 * The bring-up overlap switch (VMSHIM_TEST_BRINGUP_OVERLAP=1) tracks, per container, the span from
 * MountDisk (or CreateContainer) to the end of CreateContainer; a span opening while another is
 * open is logged and drops every control connection, loudly, so a test sees it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "disk.h"
#include "log.h"
#include "msg.h"
#include "runner.h"
#include "stats.h"
#include "util.h"

#define CONTROL_BACKLOG_MAX   1024
#define CONTROL_SUB_LIMIT     (8u * 1024 * 1024)
#define CONTROL_MOUNT_POLL_MS 100

struct control_client {
	LIST_ENTRY(control_client) entry;
	struct rpc_conn *conn; /* plain pointer: forgotten in on_close */
	bool subscribed;
	uint32_t sub_sid;
};

struct control_event {
	TAILQ_ENTRY(control_event) entry;
	char *buf;
	size_t len;
};

struct control_span {
	LIST_ENTRY(control_span) entry;
	char *id;
};

/* A request answered later: references keep everything alive until the answer. */
struct control_call {
	struct rpc_conn *conn;
	uint32_t sid;
	struct container *c;
	struct proc *p;
	const char *method;
	/* MountDisk */
	char *id; /* the container the disk is for ("" when not given) */
	char *source;
	char *target;
	char *fstype;
	char *data;
	unsigned long flags;
	int64_t hold_until; /* the overlap switch's hold (monotonic ms; 0: none) */
	int64_t deadline;
	struct event *timer;
};

static LIST_HEAD(, control_client) control_clients = LIST_HEAD_INITIALIZER(control_clients);
static TAILQ_HEAD(, control_event) control_backlog = TAILQ_HEAD_INITIALIZER(control_backlog);
static unsigned control_backlog_len;
static LIST_HEAD(, control_span) control_spans = LIST_HEAD_INITIALIZER(control_spans);

static void control_start_now(struct proc *p);

/* ---- calls answered later ---- */

static struct control_call *
control_call_new(
    struct rpc_conn *conn, uint32_t sid, const char *method, struct container *c, struct proc *p)
{
	struct control_call *k = xcalloc(1, sizeof *k);

	k->conn = rpc_conn_ref(conn);
	k->sid = sid;
	k->method = method;
	if (c != NULL) {
		k->c = c;
		container_ref(c);
	}
	if (p != NULL) {
		k->p = p;
		proc_ref(p);
	}
	return k;
}

/* Drop the call's references and free it. */
static void
control_call_free(struct control_call *k)
{
	rpc_conn_unref(k->conn);
	if (k->p != NULL)
		proc_unref(k->p);
	if (k->c != NULL)
		container_unref(k->c);
	if (k->timer != NULL)
		event_free(k->timer);
	free(k->id);
	free(k->source);
	free(k->target);
	free(k->fstype);
	free(k->data);
	free(k);
}

/* Answer with the status or the result (a plain {} when result is NULL) and free the call. */
static void
control_call_done(struct control_call *k, const struct status *st, json_t *result)
{
	if (st->code != ST_OK)
		rpc_conn_respond_status(k->conn, k->sid, st);
	else
		rpc_conn_respond(k->conn, k->sid, ST_OK, "", result);
	control_call_free(k);
}

/* The generic runner callback: answer {} or the error. */
static void
control_runner_done(const struct status *st, json_t *result, void *arg)
{
	struct control_call *k = arg;

	if (st->code != ST_OK)
		log_warn_id(k->c != NULL ? k->c->id : NULL, k->p != NULL ? k->p->exec_id : NULL,
		    "%s: %s", k->method, st->msg);
	control_call_done(k, st, NULL);
}

/* ---- field helpers ---- */

/* Read payload.id (and payload.exec_id) and find the container (and process). */
static int
control_lookup(
    json_t *payload, bool want_proc, struct container **cp, struct proc **pp, struct status *st)
{
	const char *id = NULL, *exec_id = "";

	if (msg_get_string(payload, "payload", "id", true, &id, st) < 0)
		return -1;
	if (want_proc && msg_get_string(payload, "payload", "exec_id", false, &exec_id, st) < 0)
		return -1;
	*cp = container_find(id);
	if (*cp == NULL)
		return status_set(st, ST_NOT_FOUND, "container %.*s: not found", LOG_STR_MAX, id);
	if (!want_proc)
		return 0;
	*pp = proc_find(*cp, exec_id);
	if (*pp == NULL)
		return status_set(st, ST_NOT_FOUND, "container %.*s exec %.*s: not found",
		    LOG_STR_MAX, id, LOG_STR_MAX, exec_id);
	return 0;
}

/* Read payload.terminal and the three stream booleans. */
static int
control_get_stdio(json_t *payload, bool declared[STDIO_N], bool *terminal, struct status *st)
{
	int k;

	*terminal = false;
	if (msg_get_bool(payload, "payload", "terminal", false, terminal, st) < 0)
		return -1;
	for (k = 0; k < STDIO_N; k++) {
		declared[k] = false;
		if (msg_get_bool(payload, "payload", stdio_kind_name(k), false, &declared[k], st) <
		    0)
			return -1;
	}
	return 0;
}

/* A process object needs a non-empty args array of strings. */
static int
control_check_process(json_t *process, const char *where, struct status *st)
{
	json_t *args = NULL;
	size_t i;

	if (msg_get_array(process, where, "args", true, &args, st) < 0)
		return -1;
	if (json_array_size(args) == 0)
		return status_set(st, ST_INVALID_ARGUMENT, "%s.args: empty", where);
	for (i = 0; i < json_array_size(args); i++) {
		if (!json_is_string(json_array_get(args, i)))
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s.args[%zu]: expected string", where, i);
	}
	return 0;
}

/* A container whose CreateContainer or DeleteProcess runs accepts no lifecycle call. */
static int
control_check_settled(struct container *c, struct status *st)
{
	if (c->creating)
		return status_set(st, ST_FAILED_PRECONDITION, "container %s: being created", c->id);
	if (c->deleting)
		return status_set(st, ST_FAILED_PRECONDITION, "container %s: being deleted", c->id);
	return 0;
}

/* ---- bring-up overlap switch ---- */

void
control_bringup_begin(const char *id)
{
	struct control_span *s;

	if (!agent.test_bringup_overlap)
		return;
	LIST_FOREACH (s, &control_spans, entry) {
		if (strcmp(s->id, id) == 0)
			return;
	}
	if (!LIST_EMPTY(&control_spans)) {
		log_error_id(id, NULL,
		    "bring-up overlap detected: %.*s starts while %.*s is in progress: dropping "
		    "every control connection",
		    LOG_STR_MAX, id, LOG_STR_MAX, LIST_FIRST(&control_spans)->id);
		control_close_all();
	}
	s = xcalloc(1, sizeof *s);
	s->id = xstrdup(id);
	LIST_INSERT_HEAD(&control_spans, s, entry);
}

void
control_bringup_end(const char *id)
{
	struct control_span *s;

	LIST_FOREACH (s, &control_spans, entry) {
		if (strcmp(s->id, id) == 0) {
			LIST_REMOVE(s, entry);
			free(s->id);
			free(s);
			return;
		}
	}
}

/* ---- events ---- */

/*
 * Queue an event for one subscriber: 0 when queued, -1 when it was not (a connection that is
 * closing, or whose peer stopped reading and is dropped here: cl may be gone on return).
 */
static int
control_send_event(struct control_client *cl, const char *buf, size_t len)
{
	if (rpc_conn_is_closed(cl->conn)) {
		cl->subscribed = false;
		return -1;
	}
	if (rpc_conn_send_data(cl->conn, cl->sub_sid, 0, buf, len, CONTROL_SUB_LIMIT) < 0) {
		log_warn("event subscriber on fd %d stopped reading: dropping it",
		    rpc_conn_fd(cl->conn));
		cl->subscribed = false;
		rpc_conn_close(cl->conn);
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
	struct control_client *cl, *next;
	struct control_event *ev;
	bool sent = false;
	size_t len;
	char *buf;

	time_rfc3339_now(ts);
	buf = msg_event_encode(topic, ts, event, &len);
	for (cl = LIST_FIRST(&control_clients); cl != NULL; cl = next) {
		next = LIST_NEXT(cl, entry);
		if (cl->subscribed && control_send_event(cl, buf, len) == 0)
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

/* ---- the start path ---- */

/* The runner started the process (or failed to). */
static void
control_start_done(const struct status *st, json_t *result, void *arg)
{
	struct control_call *k = arg;
	struct proc *p = k->p;
	json_t *res;

	if (st->code != ST_OK) {
		if (p->state == PROC_STARTING)
			p->state = PROC_CREATED;
		log_error_id(p->c->id, p->exec_id, "start failed: %s", st->msg);
		control_call_done(k, st, NULL);
		return;
	}
	if (p->state == PROC_STARTING)
		p->state = PROC_RUNNING;
	log_debug_id(p->c->id, p->exec_id, "started pid %d", (int)p->pid);
	res = json_pack("{s:i}", "pid", (int)p->pid);
	control_call_done(k, st, res);
	json_decref(res);
}

/* Streams are attached: hand the parked StartProcess to the runner. */
static void
control_start_now(struct proc *p)
{
	struct control_call *k;

	k = control_call_new(p->start_conn, p->start_sid, "StartProcess", p->c, p);
	rpc_conn_unref(p->start_conn);
	p->start_conn = NULL;
	if (p->start_timer != NULL)
		evtimer_del(p->start_timer);
	p->state = PROC_STARTING;
	agent.runner->start(p, control_start_done, k);
}

void
control_streams_changed(struct proc *p)
{
	enum stdio_kind missing;

	if (p->start_conn != NULL && proc_streams_ready(p, &missing))
		control_start_now(p);
}

/* A parked StartProcess waited too long for its streams. */
static void
control_start_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;
	enum stdio_kind missing = STDIO_IN;
	struct status st;

	if (p->start_conn == NULL)
		return;
	proc_streams_ready(p, &missing);
	status_set(&st, ST_FAILED_PRECONDITION, "stream %s not attached within %d s",
	    stdio_kind_name(missing), AGENT_START_WAIT_MS / 1000);
	log_warn_id(p->c->id, p->exec_id, "start: %s", st.msg);
	rpc_conn_respond_status(p->start_conn, p->start_sid, &st);
	rpc_conn_unref(p->start_conn);
	p->start_conn = NULL;
}

void
control_proc_removed(struct proc *p)
{
	struct status st;

	if (p->start_conn == NULL)
		return;
	status_set(&st, ST_NOT_FOUND, "process deleted before it started");
	rpc_conn_respond_status(p->start_conn, p->start_sid, &st);
	rpc_conn_unref(p->start_conn);
	p->start_conn = NULL;
	if (p->start_timer != NULL)
		evtimer_del(p->start_timer);
}

/* ---- handlers ---- */

typedef void (*control_fn)(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);

static void
control_ping(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	json_t *res = json_pack("{s:s, s:i, s:s}", "version", AGENT_VERSION, "pid", (int)getpid(),
	    "runner", agent.runner->name);

	rpc_conn_respond(conn, sid, ST_OK, "", res);
	json_decref(res);
}

/* The runner prepared the init (or failed: the container goes); answer {pid}. */
static void
control_create_done(const struct status *st, json_t *result, void *arg)
{
	struct control_call *k = arg;
	json_t *res;

	control_bringup_end(k->c->id);
	k->c->creating = false;
	if (st->code != ST_OK) {
		log_error_id(k->c->id, NULL, "create failed: %s", st->msg);
		container_remove(k->c);
		control_call_done(k, st, NULL);
		return;
	}
	log_info_id(
	    k->c->id, NULL, "created, init pid %d", k->c->init != NULL ? (int)k->c->init->pid : 0);
	/*
	 * The oci runner gives the container a cgroup of its own: watch its OOM-kill count.
	 * (The process runner's processes share the agent's cgroup, whose count is not theirs.)
	 */
	if (agent.runner == &runner_oci_ops && k->c->init != NULL && k->c->init->pid > 0 &&
	    (k->c->oom_file = stats_oom_file(k->c->init->pid)) != NULL)
		k->c->oom_kills = stats_oom_count(k->c->oom_file);
	res = json_pack("{s:i}", "pid", k->c->init != NULL ? (int)k->c->init->pid : 0);
	control_call_done(k, st, res);
	json_decref(res);
}

/* CreateContainer: validate, add the container and its init, hand it to the runner. */
static void
control_create(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	const char *id = NULL, *bundle = "", *rootfs = "";
	json_t *spec = NULL, *process = NULL, *mounts = NULL;
	bool declared[STDIO_N], terminal;
	struct control_call *k;
	struct container *c;
	struct status st;

	if (msg_get_string(payload, "payload", "id", true, &id, &st) < 0 ||
	    protocol_check_id("id", id, false, &st) < 0 ||
	    msg_get_string(payload, "payload", "bundle", false, &bundle, &st) < 0 ||
	    msg_get_string(payload, "payload", "rootfs_mount", false, &rootfs, &st) < 0 ||
	    msg_get_array(payload, "payload", "rootfs_mounts", false, &mounts, &st) < 0 ||
	    msg_get_object(payload, "payload", "spec", true, &spec, &st) < 0 ||
	    msg_get_object(spec, "payload.spec", "process", true, &process, &st) < 0 ||
	    control_check_process(process, "payload.spec.process", &st) < 0 ||
	    control_get_stdio(payload, declared, &terminal, &st) < 0)
		goto fail;
	if (container_find(id) != NULL) {
		status_set(&st, ST_ALREADY_EXISTS, "container %s: already exists", id);
		goto fail;
	}
	control_bringup_begin(id);
	c = container_new(id, bundle);
	if (proc_new(c, "", process, terminal, declared, &st) == NULL) {
		control_bringup_end(id);
		container_remove(c);
		goto fail;
	}
	free(c->rootfs);
	c->rootfs = xstrdup(rootfs);
	if (rootfs_mount(c, mounts, &st) < 0) {
		control_bringup_end(id);
		container_remove(c);
		goto fail;
	}
	k = control_call_new(conn, sid, "CreateContainer", c, NULL);
	/* Until control_create_done, Start/Exec/Delete would race the runner: refused. */
	c->creating = true;
	agent.runner->create(c, spec, control_create_done, k);
	return;
fail:
	rpc_conn_respond_status(conn, sid, &st);
}

/* StartProcess: park until the declared streams attached, then start. */
static void
control_start(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	enum stdio_kind missing;
	struct container *c;
	struct proc *p;
	struct status st;
	struct timeval tv = {AGENT_START_WAIT_MS / 1000, 0};

	if (control_lookup(payload, true, &c, &p, &st) < 0 || control_check_settled(c, &st) < 0)
		goto fail;
	if (p->state != PROC_CREATED || p->start_conn != NULL) {
		status_set(&st, ST_FAILED_PRECONDITION, "container %s exec %s: already started",
		    c->id, p->exec_id);
		goto fail;
	}
	if (p->exec_id[0] != '\0' && (c->init == NULL || c->init->state != PROC_RUNNING)) {
		status_set(&st, ST_FAILED_PRECONDITION, "container %s: not running", c->id);
		goto fail;
	}
	p->start_conn = rpc_conn_ref(conn);
	p->start_sid = sid;
	if (proc_streams_ready(p, &missing)) {
		control_start_now(p);
		return;
	}
	/* Park (never block the loop) until the declared streams attach. */
	if (p->start_timer == NULL)
		p->start_timer = evtimer_new(agent.base, control_start_timeout, p);
	evtimer_add(p->start_timer, &tv);
	return;
fail:
	rpc_conn_respond_status(conn, sid, &st);
}

/* ExecProcess: prepare an exec process in a running container (started later). */
static void
control_exec(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	const char *exec_id = NULL;
	bool declared[STDIO_N], terminal;
	json_t *process = NULL, *res;
	struct container *c;
	struct status st;

	if (control_lookup(payload, false, &c, NULL, &st) < 0 ||
	    msg_get_string(payload, "payload", "exec_id", true, &exec_id, &st) < 0 ||
	    protocol_check_id("exec_id", exec_id, false, &st) < 0 ||
	    msg_get_object(payload, "payload", "process", true, &process, &st) < 0 ||
	    control_check_process(process, "payload.process", &st) < 0 ||
	    control_get_stdio(payload, declared, &terminal, &st) < 0 ||
	    control_check_settled(c, &st) < 0)
		goto fail;
	if (proc_find(c, exec_id) != NULL) {
		status_set(
		    &st, ST_ALREADY_EXISTS, "container %s exec %s: already exists", c->id, exec_id);
		goto fail;
	}
	if (c->init == NULL || c->init->state != PROC_RUNNING) {
		status_set(&st, ST_FAILED_PRECONDITION, "container %s: not running", c->id);
		goto fail;
	}
	if (proc_new(c, exec_id, process, terminal, declared, &st) == NULL)
		goto fail;
	res = json_pack("{s:i}", "pid", 0);
	rpc_conn_respond(conn, sid, ST_OK, "", res);
	json_decref(res);
	return;
fail:
	rpc_conn_respond_status(conn, sid, &st);
}

/* SignalProcess: deliver a signal to a live process through the runner. */
static void
control_signal(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	struct container *c;
	struct proc *p;
	struct status st;
	uint32_t sig = 0;
	bool all = false;

	if (control_lookup(payload, true, &c, &p, &st) < 0 ||
	    msg_get_u32(payload, "payload", "signal", true, &sig, &st) < 0 ||
	    msg_get_bool(payload, "payload", "all", false, &all, &st) < 0)
		goto fail;
	if (sig == 0 || sig >= (uint32_t)NSIG) {
		status_set(&st, ST_INVALID_ARGUMENT, "payload.signal: %u is not a signal", sig);
		goto fail;
	}
	if (c->creating) {
		control_check_settled(c, &st);
		goto fail;
	}
	if (!proc_is_live(p)) {
		status_set(&st, ST_NOT_FOUND, "container %s exec %s: process not running", c->id,
		    p->exec_id);
		goto fail;
	}
	agent.runner->signal(p, (int)sig, all, control_runner_done,
	    control_call_new(conn, sid, "SignalProcess", c, p));
	return;
fail:
	rpc_conn_respond_status(conn, sid, &st);
}

/* CloseStdin: end the process's stdin after what is queued. */
static void
control_close_stdin(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	struct container *c;
	struct proc *p;
	struct status st;

	if (control_lookup(payload, true, &c, &p, &st) < 0) {
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	proc_close_stdin(p);
	rpc_conn_respond(conn, sid, ST_OK, "", NULL);
}

/* ResizePty: set the terminal's window size. */
static void
control_resize(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	uint32_t w = 0, h = 0;
	struct container *c;
	struct proc *p;
	struct status st;

	if (control_lookup(payload, true, &c, &p, &st) < 0 ||
	    msg_get_u32(payload, "payload", "width", true, &w, &st) < 0 ||
	    msg_get_u32(payload, "payload", "height", true, &h, &st) < 0)
		goto fail;
	if (!p->terminal) {
		status_set(&st, ST_FAILED_PRECONDITION, "container %s exec %s: no terminal", c->id,
		    p->exec_id);
		goto fail;
	}
	/* Before the oci runner received the master, the size is applied on its arrival. */
	if (proc_resize_pty(p, w, h, &st) < 0)
		goto fail;
	rpc_conn_respond(conn, sid, ST_OK, "", NULL);
	return;
fail:
	rpc_conn_respond_status(conn, sid, &st);
}

/* PauseContainer / ResumeContainer through the runner. */
static void
control_pause_resume(struct rpc_conn *conn, uint32_t sid, json_t *payload, bool pause)
{
	struct container *c;
	struct status st;

	if (control_lookup(payload, false, &c, NULL, &st) < 0 ||
	    control_check_settled(c, &st) < 0) {
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	/*
	 * Only a running container is paused: a created one has nothing to freeze, and its
	 * init, stopped while it waits for its start byte, would not even see its start pipe
	 * close on DeleteProcess (the shim refuses this too; the agent does not rely on it).
	 */
	if (pause && (c->init == NULL || c->init->state != PROC_RUNNING)) {
		status_set(&st, ST_FAILED_PRECONDITION, "container %s: not running", c->id);
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	agent.runner->pause(c, pause, control_runner_done,
	    control_call_new(conn, sid, pause ? "PauseContainer" : "ResumeContainer", c, NULL));
}

static void
control_pause(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	control_pause_resume(conn, sid, payload, true);
}

static void
control_resume(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	control_pause_resume(conn, sid, payload, false);
}

/* UpdateContainer: hand the OCI resources to the runner. */
static void
control_update(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	json_t *resources = NULL;
	struct container *c;
	struct status st;

	if (control_lookup(payload, false, &c, NULL, &st) < 0 ||
	    msg_get_object(payload, "payload", "resources", true, &resources, &st) < 0 ||
	    control_check_settled(c, &st) < 0) {
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	agent.runner->update(c, resources, control_runner_done,
	    control_call_new(conn, sid, "UpdateContainer", c, NULL));
}

/* Stats: CPU, memory and pid counts of the container. */
static void
control_stats(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	struct container *c;
	struct status st;
	json_t *res;

	if (control_lookup(payload, false, &c, NULL, &st) < 0) {
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	if (c->init == NULL || c->init->pid <= 0) {
		status_set(&st, ST_FAILED_PRECONDITION, "container %s: no process", c->id);
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	res = stats_collect(c);
	rpc_conn_respond(conn, sid, ST_OK, "", res);
	json_decref(res);
}

/* The runner listed the pids: answer {processes:[{pid}]}. */
static void
control_pids_done(const struct status *st, json_t *result, void *arg)
{
	struct control_call *k = arg;
	json_t *res, *procs, *v;
	size_t i;

	if (st->code != ST_OK) {
		control_call_done(k, st, NULL);
		return;
	}
	procs = json_array();
	json_array_foreach (result, i, v)
		json_array_append_new(procs, json_pack("{s:O}", "pid", v));
	res = json_pack("{s:o}", "processes", procs);
	control_call_done(k, st, res);
	json_decref(res);
}

/* Pids: ask the runner for the container's pids. */
static void
control_pids(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	struct container *c;
	struct status st;

	if (control_lookup(payload, false, &c, NULL, &st) < 0 ||
	    control_check_settled(c, &st) < 0) {
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	agent.runner->pids(c, control_pids_done, control_call_new(conn, sid, "Pids", c, NULL));
}

/* The exit of p as DeleteProcess answers it. */
static json_t *
control_exit_json(struct proc *p)
{
	char ts[TIME_RFC3339_LEN];

	if (p->state == PROC_STOPPED)
		time_rfc3339(&p->exited_at, ts);
	else
		snprintf(ts, sizeof ts, "0001-01-01T00:00:00Z");
	return json_pack("{s:i, s:i, s:s}", "pid", (int)p->pid, "exit_status",
	    p->state == PROC_STOPPED ? p->exit_status : 0, "exited_at", ts);
}

/* The runner removed the container: answer the init's exit and forget it. */
static void
control_delete_done(const struct status *st, json_t *result, void *arg)
{
	struct control_call *k = arg;
	json_t *res;

	k->c->deleting = false;
	if (st->code != ST_OK) {
		control_call_done(k, st, NULL);
		return;
	}
	res = control_exit_json(k->p);
	container_remove(k->c);
	log_info_id(k->c->id, NULL, "deleted");
	control_call_done(k, st, res);
	json_decref(res);
}

/* DeleteProcess: forget an exec at once; the init deletes the whole container. */
static void
control_delete(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	struct container *c;
	struct proc *p, *q;
	struct status st;
	json_t *res;

	if (control_lookup(payload, true, &c, &p, &st) < 0 || control_check_settled(c, &st) < 0)
		goto fail;
	if (p->state != PROC_STOPPED && p->state != PROC_CREATED) {
		status_set(&st, ST_FAILED_PRECONDITION, "container %s exec %s: process is %s",
		    c->id, p->exec_id,
		    p->state == PROC_EXITED ? "still draining its output" : "running");
		goto fail;
	}
	if (p->start_conn != NULL) {
		status_set(&st, ST_FAILED_PRECONDITION, "container %s exec %s: start in progress",
		    c->id, p->exec_id);
		goto fail;
	}
	if (p != c->init) {
		res = control_exit_json(p);
		proc_remove(p);
		rpc_conn_respond(conn, sid, ST_OK, "", res);
		json_decref(res);
		return;
	}
	TAILQ_FOREACH (q, &c->procs, entry) {
		if (q != p && q->state == PROC_STARTING) {
			status_set(&st, ST_FAILED_PRECONDITION, "container %s: exec %s is starting",
			    c->id, q->exec_id);
			goto fail;
		}
	}
	/* A second DeleteProcess while the runner removes it answers FAILED_PRECONDITION. */
	c->deleting = true;
	agent.runner->remove(
	    c, control_delete_done, control_call_new(conn, sid, "DeleteProcess", c, p));
	return;
fail:
	rpc_conn_respond_status(conn, sid, &st);
}

/*
 * ProcessState: what the agent knows of one process, so a shim that lost its link (and
 * perhaps an exit event with it) can learn, after reconnecting, whether the process ended.
 */
static void
control_process_state(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	static const char *const names[] = {
	    [PROC_CREATED] = PROTOCOL_STATE_CREATED,
	    [PROC_STARTING] = PROTOCOL_STATE_RUNNING,
	    [PROC_RUNNING] = PROTOCOL_STATE_RUNNING,
	    [PROC_EXITED] = PROTOCOL_STATE_EXITED,
	    [PROC_STOPPED] = PROTOCOL_STATE_STOPPED,
	};
	char ts[TIME_RFC3339_LEN] = "";
	struct container *c;
	struct proc *p;
	struct status st;
	bool ended;
	json_t *res;

	if (control_lookup(payload, true, &c, &p, &st) < 0) {
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	ended = p->state == PROC_EXITED || p->state == PROC_STOPPED;
	if (ended)
		time_rfc3339(&p->exited_at, ts);
	res = json_pack("{s:s, s:i, s:i, s:s}", "status", names[p->state], "pid", (int)p->pid,
	    "exit_status", ended ? p->exit_status : 0, "exited_at", ts);
	rpc_conn_respond(conn, sid, ST_OK, "", res);
	json_decref(res);
}

/* ---- disks ---- */

struct control_mount_opt {
	const char *name;
	unsigned long flag;
	bool clear;
};

static const struct control_mount_opt control_mount_opts[] = {
    {"ro", MS_RDONLY, false},
    {"rw", MS_RDONLY, true},
    {"nosuid", MS_NOSUID, false},
    {"suid", MS_NOSUID, true},
    {"nodev", MS_NODEV, false},
    {"dev", MS_NODEV, true},
    {"noexec", MS_NOEXEC, false},
    {"exec", MS_NOEXEC, true},
    {"relatime", MS_RELATIME, false},
    {"noatime", MS_NOATIME, false},
    {"sync", MS_SYNCHRONOUS, false},
    {"defaults", 0, false},
};

/* Split OCI-style options into mount flags and the data string. */
static int
control_mount_options(json_t *opts, unsigned long *flags, char **data, struct status *st)
{
	size_t i, j, len = 0;
	char *d = xstrdup("");
	const char *o;

	*flags = 0;
	for (i = 0; i < json_array_size(opts); i++) {
		if (!json_is_string(json_array_get(opts, i))) {
			free(d);
			return status_set(
			    st, ST_INVALID_ARGUMENT, "payload.options[%zu]: expected string", i);
		}
		o = json_string_value(json_array_get(opts, i));
		for (j = 0; j < ARRAY_SIZE(control_mount_opts); j++) {
			if (strcmp(o, control_mount_opts[j].name) == 0)
				break;
		}
		if (j < ARRAY_SIZE(control_mount_opts)) {
			if (control_mount_opts[j].clear)
				*flags &= ~control_mount_opts[j].flag;
			else
				*flags |= control_mount_opts[j].flag;
			continue;
		}
		d = xrealloc(d, len + strlen(o) + 2);
		if (len > 0)
			d[len++] = ',';
		strcpy(d + len, o);
		len += strlen(o);
	}
	*data = d;
	return 0;
}

/* In a helper child: create the target and mount. */
static int
control_mount_child(void *arg)
{
	struct control_call *k = arg;

	if (mkdir_p(k->target, 0755) < 0) {
		dprintf(2, "mkdir %.*s: %s", LOG_STR_MAX, k->target, strerror(errno));
		return 1;
	}
	if (mount(k->source, k->target, k->fstype, k->flags, k->data) < 0) {
		dprintf(2, "mount %.*s on %.*s (%.*s): %s", LOG_STR_MAX, k->source, LOG_STR_MAX,
		    k->target, LOG_STR_MAX, k->fstype, strerror(errno));
		return 1;
	}
	return 0;
}

/* The mount helper finished: answer {mounted, source, message}. */
static void
control_mount_done(int wstatus, const char *output, size_t len, void *arg)
{
	struct control_call *k = arg;
	struct status st;
	json_t *res;

	if (proc_wait_status(wstatus) != 0) {
		status_set(&st, ST_INTERNAL, "%s", len > 0 ? output : "mount failed");
		log_error_id(k->c != NULL ? k->c->id : NULL, NULL, "%s", st.msg);
		control_call_done(k, &st, NULL);
		return;
	}
	log_info("mounted %.*s on %.*s", LOG_STR_MAX, k->source, LOG_STR_MAX, k->target);
	status_clear(&st);
	res = json_pack("{s:b, s:s, s:s}", "mounted", 1, "source", k->source, "message", "");
	control_call_done(k, &st, res);
	json_decref(res);
}

/* Wait for the disk's by-id link (the hot-add may still be settling), then mount. */
static void
control_mount_poll(evutil_socket_t fd, short what, void *arg)
{
	struct control_call *k = arg;
	struct timeval tv = {0, CONTROL_MOUNT_POLL_MS * 1000};
	int64_t now = time_mono_ms();
	struct status st;
	json_t *res;

	if (now < k->hold_until) {
		tv.tv_sec = (k->hold_until - now) / 1000;
		tv.tv_usec = (k->hold_until - now) % 1000 * 1000;
		evtimer_add(k->timer, &tv);
		return;
	}
	if (agent.local_vm) {
		log_info_id(k->id, NULL, "mount skipped: local VM (serial %.*s, target %.*s)",
		    LOG_STR_MAX, k->source + strlen(DISK_BYID_PREFIX), LOG_STR_MAX, k->target);
		status_clear(&st);
		res = json_pack("{s:b, s:s, s:s}", "mounted", 0, "source", "", "message",
		    "mount skipped: local VM");
		control_call_done(k, &st, res);
		json_decref(res);
		return;
	}
	if (disk_resolve(&k->source) < 0) {
		if (time_mono_ms() < k->deadline) {
			evtimer_add(k->timer, &tv);
			return;
		}
		status_set(&st, ST_NOT_FOUND, "disk %.*s did not appear within %d s", LOG_STR_MAX,
		    k->source, AGENT_MOUNT_WAIT_MS / 1000);
		control_call_done(k, &st, NULL);
		return;
	}
	if (proc_helper_fork(control_mount_child, k, control_mount_done, k, &st) < 0)
		control_call_done(k, &st, NULL);
}

/* MountDisk: wait for the hot-added disk, then mount it in a helper child. */
static void
control_mount(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	const char *id = "", *serial = NULL, *target = NULL, *fstype = "ext4";
	json_t *opts = NULL, *res;
	struct control_call *k;
	struct status st;
	unsigned long mflags;
	char *data = NULL;

	if (msg_get_string(payload, "payload", "id", false, &id, &st) < 0 ||
	    protocol_check_id("id", id, true, &st) < 0 ||
	    msg_get_string(payload, "payload", "serial", true, &serial, &st) < 0 ||
	    msg_get_string(payload, "payload", "target", true, &target, &st) < 0 ||
	    msg_get_string(payload, "payload", "fstype", false, &fstype, &st) < 0 ||
	    msg_get_array(payload, "payload", "options", false, &opts, &st) < 0)
		goto fail;
	if (serial[0] == '\0' || strchr(serial, '/') != NULL) {
		status_set(&st, ST_INVALID_ARGUMENT, "payload.serial: invalid \"%.64s\"", serial);
		goto fail;
	}
	if (target[0] != '/') {
		status_set(&st, ST_INVALID_ARGUMENT, "payload.target: must be an absolute path");
		goto fail;
	}
	if (control_mount_options(opts, &mflags, &data, &st) < 0)
		goto fail;
	if (id[0] != '\0')
		control_bringup_begin(id);
	if (agent.local_vm && agent.test_span_hold_ms == 0) {
		log_info_id(id, NULL, "mount skipped: local VM (serial %.*s, target %.*s)",
		    LOG_STR_MAX, serial, LOG_STR_MAX, target);
		free(data);
		res = json_pack("{s:b, s:s, s:s}", "mounted", 0, "source", "", "message",
		    "mount skipped: local VM");
		rpc_conn_respond(conn, sid, ST_OK, "", res);
		json_decref(res);
		return;
	}
	k = control_call_new(conn, sid, "MountDisk", container_find(id), NULL);
	k->id = xstrdup(id);
	xasprintf(&k->source, "%s%s", DISK_BYID_PREFIX, serial);
	k->target = xstrdup(target);
	k->fstype = xstrdup(fstype);
	k->data = data;
	k->flags = mflags;
	/*
	 * Test knob (VMSHIM_TEST_SPAN_HOLD_MS): the span stays open so long that, if the shim
	 * lets a second bring-up start meanwhile, it certainly meets this one (the spans are
	 * too short to meet by chance).
	 */
	if (id[0] != '\0')
		k->hold_until = time_mono_ms() + agent.test_span_hold_ms;
	k->deadline = time_mono_ms() + agent.test_span_hold_ms + AGENT_MOUNT_WAIT_MS;
	k->timer = evtimer_new(agent.base, control_mount_poll, k);
	control_mount_poll(-1, 0, k);
	return;
fail:
	rpc_conn_respond_status(conn, sid, &st);
}

/* In a helper child: unmount the target. */
static int
control_umount_child(void *arg)
{
	struct control_call *k = arg;

	if (umount2(k->target, 0) < 0) {
		dprintf(2, "umount %s: %s", k->target, strerror(errno));
		return 1;
	}
	return 0;
}

/* The unmount helper finished: answer {} or its message. */
static void
control_umount_done(int wstatus, const char *output, size_t len, void *arg)
{
	struct control_call *k = arg;
	struct status st;

	if (proc_wait_status(wstatus) != 0)
		status_set(&st, ST_INTERNAL, "%s", len > 0 ? output : "umount failed");
	else
		status_clear(&st);
	control_call_done(k, &st, NULL);
}

/* UnmountDisk: unmount in a helper child (nothing to do in the local VM). */
static void
control_unmount(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	const char *target = NULL;
	struct control_call *k;
	struct status st;

	if (msg_get_string(payload, "payload", "target", true, &target, &st) < 0) {
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	if (agent.local_vm) {
		rpc_conn_respond(conn, sid, ST_OK, "", NULL);
		return;
	}
	k = control_call_new(conn, sid, "UnmountDisk", NULL, NULL);
	k->target = xstrdup(target);
	if (proc_helper_fork(control_umount_child, k, control_umount_done, k, &st) < 0)
		control_call_done(k, &st, NULL);
}

/* SubscribeEvents: make this connection the event stream and drain the backlog. */
static void
control_subscribe(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	struct control_client *cl;
	struct control_event *ev;

	LIST_FOREACH (cl, &control_clients, entry) {
		if (cl->conn == conn)
			break;
	}
	if (cl == NULL || cl->subscribed) {
		struct status st;
		status_set(&st, ST_ALREADY_EXISTS, "this connection already subscribed");
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	rpc_conn_respond(conn, sid, ST_OK, "", NULL);
	cl->subscribed = true;
	cl->sub_sid = sid;
	/* An event this subscriber could not take stays at the head for the next one. */
	while ((ev = TAILQ_FIRST(&control_backlog)) != NULL) {
		if (control_send_event(cl, ev->buf, ev->len) < 0)
			break;
		TAILQ_REMOVE(&control_backlog, ev, entry);
		control_backlog_len--;
		free(ev->buf);
		free(ev);
	}
}

static const struct {
	const char *name;
	control_fn fn;
} control_methods[] = {
    {"Ping", control_ping},
    {"CreateContainer", control_create},
    {"StartProcess", control_start},
    {"ExecProcess", control_exec},
    {"SignalProcess", control_signal},
    {"CloseStdin", control_close_stdin},
    {"ResizePty", control_resize},
    {"PauseContainer", control_pause},
    {"ResumeContainer", control_resume},
    {"UpdateContainer", control_update},
    {"Stats", control_stats},
    {"Pids", control_pids},
    {"DeleteProcess", control_delete},
    {"ProcessState", control_process_state},
    {"MountDisk", control_mount},
    {"UnmountDisk", control_unmount},
    {"SubscribeEvents", control_subscribe},
};

/* ---- connections ---- */

static void
control_on_request(
    struct rpc_conn *conn, uint32_t sid, uint8_t flags, struct msg_request *req, void *arg)
{
	size_t i;

	if (strcmp(req->service, PROTOCOL_AGENT_SERVICE) != 0) {
		rpc_conn_respond(conn, sid, ST_UNIMPLEMENTED, "unknown service", NULL);
		goto out;
	}
	for (i = 0; i < ARRAY_SIZE(control_methods); i++) {
		if (strcmp(req->method, control_methods[i].name) == 0) {
			log_debug("%s", req->method);
			control_methods[i].fn(conn, sid, flags, req->payload);
			goto out;
		}
	}
	rpc_conn_respond(conn, sid, ST_UNIMPLEMENTED, "unknown method", NULL);
out:
	msg_request_clear(req);
}

/* A control connection went away: forget it (its subscription with it). */
static void
control_on_close(struct rpc_conn *conn, void *arg)
{
	struct control_client *cl = arg;

	log_debug("control connection fd %d closed", rpc_conn_fd(conn));
	LIST_REMOVE(cl, entry);
	free(cl);
}

static const struct rpc_server_ops control_ops = {
    .on_request = control_on_request,
    .on_close = control_on_close,
};

void
control_accept(int fd)
{
	struct control_client *cl = xcalloc(1, sizeof *cl);

	cl->conn = rpc_conn_new(agent.base, fd, AGENT_MAX_MESSAGE, &control_ops, cl);
	if (cl->conn == NULL) {
		free(cl);
		return;
	}
	LIST_INSERT_HEAD(&control_clients, cl, entry);
	log_debug("control connection fd %d", fd);
}

void
control_close_all(void)
{
	struct control_client *cl, *next;

	/* rpc_conn_close may run on_close (which unlinks cl) later or at once. */
	for (cl = LIST_FIRST(&control_clients); cl != NULL; cl = next) {
		next = LIST_NEXT(cl, entry);
		rpc_conn_close(cl->conn);
	}
}

void
control_shutdown(void)
{
	struct control_event *ev;
	struct control_span *s;

	control_close_all();
	while ((ev = TAILQ_FIRST(&control_backlog)) != NULL) {
		TAILQ_REMOVE(&control_backlog, ev, entry);
		free(ev->buf);
		free(ev);
	}
	while ((s = LIST_FIRST(&control_spans)) != NULL) {
		LIST_REMOVE(s, entry);
		free(s->id);
		free(s);
	}
}
