/*
 * task.c: request dispatch and the container/process table, on the loop thread.
 *
 * task_methods[] is the one table that maps (service, method) to a handler; adding a method
 * touches that table and the file of its family (task-lifecycle.c, task-control.c,
 * task-query.c, events.c). Handlers receive a struct task_call that owns the decoded request
 * and a reference to the connection; they answer exactly once with task_call_finish*(), at
 * once or from a worker job's completion.
 *
 * The table (containers, each with its init process and its execs) is owned by the loop
 * thread and touched nowhere else: worker jobs carry copies of what they need and look the
 * process up again by id when they complete, because it may have been deleted meanwhile.
 * A process's exit is published (/tasks/exit, Wait answers) only when the agent has reported
 * it AND its stdout/stderr have been fully written to the host (docs/CONTRACT.md 5.1), and never
 * before its /tasks/start event.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "frame.h"
#include "io.h"
#include "shim.h"
#include "util.h"

static void (*task_exit_fn)(void); /* task_init's request_exit */

static void task_checkpoint(struct task_call *call);
static void task_subscribe(struct task_call *call);

static const struct task_method {
	const char *service;
	const char *method;
	task_method_fn fn;
} task_methods[] = {
    {PROTOCOL_TASK_SERVICE, "Create", task_create},
    {PROTOCOL_TASK_SERVICE, "Start", task_start},
    {PROTOCOL_TASK_SERVICE, "Exec", task_exec},
    {PROTOCOL_TASK_SERVICE, "Delete", task_delete},
    {PROTOCOL_TASK_SERVICE, "Kill", task_kill},
    {PROTOCOL_TASK_SERVICE, "Pause", task_pause},
    {PROTOCOL_TASK_SERVICE, "Resume", task_resume},
    {PROTOCOL_TASK_SERVICE, "Update", task_update},
    {PROTOCOL_TASK_SERVICE, "ResizePty", task_resize_pty},
    {PROTOCOL_TASK_SERVICE, "CloseIO", task_close_io},
    {PROTOCOL_TASK_SERVICE, "Wait", task_wait},
    {PROTOCOL_TASK_SERVICE, "Shutdown", task_shutdown_method},
    {PROTOCOL_TASK_SERVICE, "State", task_state},
    {PROTOCOL_TASK_SERVICE, "Pids", task_pids},
    {PROTOCOL_TASK_SERVICE, "Stats", task_stats},
    {PROTOCOL_TASK_SERVICE, "Connect", task_connect},
    {PROTOCOL_TASK_SERVICE, "Checkpoint", task_checkpoint},
    {PROTOCOL_EVENTS_SERVICE, "Subscribe", task_subscribe},
};

static struct task_container *task_table;

int
task_timeout_ms(const struct msg_request *req)
{
	int64_t ms;

	if (req->timeout_nano <= 0)
		return (int)shim.cfg.request_timeout_ms;
	ms = (req->timeout_nano + 999999) / 1000000;
	return ms > 86400000 ? 86400000 : (int)ms;
}

void
task_dispatch(struct rpc_conn *c, uint32_t stream_id, uint8_t flags, struct msg_request *req)
{
	const struct task_method *m = NULL;
	struct task_call *call;
	bool service_known = false;

	for (size_t i = 0; i < ARRAY_SIZE(task_methods); i++) {
		if (strcmp(task_methods[i].service, req->service) != 0)
			continue;
		service_known = true;
		if (strcmp(task_methods[i].method, req->method) == 0) {
			m = &task_methods[i];
			break;
		}
	}
	if (m == NULL) {
		if (service_known)
			rpc_conn_respond(c, stream_id, ST_UNIMPLEMENTED, "unknown method", NULL);
		else
			rpc_conn_respond(c, stream_id, ST_UNIMPLEMENTED, "unknown service", NULL);
		log_debug("unimplemented %s/%s", req->service, req->method);
		msg_request_clear(req);
		return;
	}
	if (m->fn == task_subscribe && req->codec != MSG_CODEC_JSON) {
		/* containerd takes events through Events/Forward on its own socket (forward.c). */
		rpc_conn_respond(c, stream_id, ST_UNIMPLEMENTED,
		    "Subscribe streams JSON events: send it as a JSON request", NULL);
		msg_request_clear(req);
		return;
	}
	if (m->fn == task_subscribe && !(flags & FRAME_FLAG_REMOTE_OPEN)) {
		rpc_conn_respond(c, stream_id, ST_INVALID_ARGUMENT,
		    "Subscribe must be sent with flag 0x02 (remote open)", NULL);
		msg_request_clear(req);
		return;
	}
	call = xcalloc(1, sizeof *call);
	call->conn = rpc_conn_ref(c);
	call->stream_id = stream_id;
	call->req = *req;
	memset(req, 0, sizeof *req);
	call->timeout_ms = task_timeout_ms(&call->req);
	log_debug("%s/%s", call->req.service, call->req.method);
	m->fn(call);
}

void
task_call_free(struct task_call *call)
{
	if (call == NULL)
		return;
	msg_request_clear(&call->req);
	rpc_conn_unref(call->conn);
	free(call);
}

void
task_call_finish(struct task_call *call, int code, const char *msg, json_t *payload)
{
	rpc_conn_respond(call->conn, call->stream_id, code, msg, payload);
	json_decref(payload);
	if (code != ST_OK)
		log_debug("%s: %s: %s", call->req.method, status_code_name(code), msg);
	task_call_free(call);
}

void
task_call_finish_fields(struct task_call *call, const struct msg_field *fields, size_t nfields)
{
	rpc_conn_respond_fields(call->conn, call->stream_id, ST_OK, "", fields, nfields);
	task_call_free(call);
}

void
task_call_finish_status(struct task_call *call, const struct status *st)
{
	task_call_finish(call, st->code, st->msg, NULL);
}

static void
task_checkpoint(struct task_call *call)
{
	task_call_finish(call, ST_UNIMPLEMENTED, "Checkpoint is not supported by vmshim", NULL);
}

static void
task_subscribe(struct task_call *call)
{
	events_subscribe(call->conn, call->stream_id, &call->req);
	task_call_free(call);
}

struct task_proc *
task_call_proc(struct task_call *call, const char **idp, const char **execp)
{
	json_t *pl = call->req.payload;
	const char *id = NULL, *exec_id = "";
	struct task_proc *p;
	struct status st;

	if (msg_get_string(pl, "payload", "id", true, &id, &st) < 0 ||
	    msg_get_string(pl, "payload", "exec_id", false, &exec_id, &st) < 0) {
		task_call_finish_status(call, &st);
		return NULL;
	}
	p = task_lookup(id, exec_id, &st);
	if (p == NULL) {
		task_call_finish_status(call, &st);
		return NULL;
	}
	*idp = id;
	if (execp != NULL)
		*execp = exec_id;
	return p;
}

/* ---- the table ---- */

struct task_container *
task_find(const char *id)
{
	for (struct task_container *c = task_table; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

struct task_proc *
task_find_proc(struct task_container *ctr, const char *exec_id)
{
	if (exec_id == NULL || *exec_id == '\0')
		return ctr->init;
	for (struct task_proc *p = ctr->execs; p != NULL; p = p->next)
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	return NULL;
}

struct task_proc *
task_lookup(const char *id, const char *exec_id, struct status *st)
{
	struct task_container *ctr = task_find(id);
	struct task_proc *p;

	if (ctr == NULL || ctr->init == NULL) {
		status_set(st, ST_NOT_FOUND, "container %.*s not found", LOG_STR_MAX, id);
		return NULL;
	}
	/* Its Create has not answered yet: it exists, but no method may act on it. */
	if (ctr->init->state == PROC_CREATING) {
		status_set(st, ST_FAILED_PRECONDITION, "container %s is being created", id);
		return NULL;
	}
	p = task_find_proc(ctr, exec_id);
	if (p == NULL) {
		status_set(st, ST_NOT_FOUND, "exec %.*s of container %s not found", LOG_STR_MAX,
		    exec_id, id);
		return NULL;
	}
	if (p->state == PROC_CREATING) {
		status_set(st, ST_FAILED_PRECONDITION, "exec %s of container %s is being created",
		    exec_id, id);
		return NULL;
	}
	return p;
}

struct task_container *
task_add(const char *id, const char *bundle)
{
	struct task_container *ctr = xcalloc(1, sizeof *ctr);

	ctr->id = xstrdup(id);
	ctr->bundle = xstrdup(bundle);
	ctr->next = task_table;
	task_table = ctr;
	return ctr;
}

struct task_proc *
task_proc_new(struct task_container *ctr, const char *exec_id)
{
	struct task_proc *p = xcalloc(1, sizeof *p);

	p->ctr = ctr;
	p->exec_id = xstrdup(exec_id != NULL ? exec_id : "");
	p->state = PROC_CREATING;
	p->stdin_path = xstrdup("");
	p->stdout_path = xstrdup("");
	p->stderr_path = xstrdup("");
	if (*p->exec_id == '\0') {
		ctr->init = p;
	} else {
		p->next = ctr->execs;
		ctr->execs = p;
	}
	return p;
}

/* Answer every waiter of p with `code` (OK: the exit) and forget them. */
static void
task_proc_answer_waiters(struct task_proc *p, int code, const char *msg)
{
	struct task_waiter *w;
	cleanup_json json_t *resp = NULL;

	if (code == ST_OK)
		resp = json_pack(
		    "{s:i, s:s}", "exit_status", p->exit_status, "exited_at", p->exited_at);
	while ((w = p->waiters) != NULL) {
		p->waiters = w->next;
		rpc_conn_respond(w->conn, w->stream_id, code, msg, resp);
		rpc_conn_unref(w->conn);
		free(w);
	}
}

static void
task_proc_free(struct task_proc *p)
{
	task_proc_answer_waiters(p, ST_NOT_FOUND, "process deleted");
	if (p->io != NULL)
		io_free(p->io);
	free(p->exec_id);
	free(p->stdin_path);
	free(p->stdout_path);
	free(p->stderr_path);
	free(p);
}

void
task_proc_remove(struct task_proc *p)
{
	struct task_container *ctr = p->ctr;
	struct task_proc **pp;

	if (p == ctr->init) {
		task_container_remove(ctr);
		return;
	}
	for (pp = &ctr->execs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	task_proc_free(p);
}

void
task_container_remove(struct task_container *ctr)
{
	struct task_container **cp;
	struct task_proc *p;

	for (cp = &task_table; *cp != NULL; cp = &(*cp)->next) {
		if (*cp == ctr) {
			*cp = ctr->next;
			break;
		}
	}
	while ((p = ctr->execs) != NULL) {
		ctr->execs = p->next;
		task_proc_free(p);
	}
	if (ctr->init != NULL)
		task_proc_free(ctr->init);
	json_decref(ctr->rootfs);
	free(ctr->id);
	free(ctr->bundle);
	free(ctr);
}

bool
task_table_empty(void)
{
	return task_table == NULL;
}

const char *
task_status_name(const struct task_proc *p)
{
	switch (p->state) {
	case PROC_CREATED:
		return "CREATED";
	case PROC_RUNNING:
		if (p->ctr->paused)
			return "PAUSED";
		return "RUNNING";
	case PROC_STOPPED:
	case PROC_DELETING:
		return "STOPPED";
	case PROC_CREATING:
		break;
	}
	return "UNKNOWN";
}

void
task_proc_maybe_exit(struct task_proc *p)
{
	const char *exec_id = p->exec_id;

	/*
	 * The exit is known: the output now has a deadline to drain, and a stdin stream still
	 * waiting for the agent's EOF one to get it (io_exit_seen).
	 */
	if (p->exit_seen && p->io != NULL &&
	    (p->state == PROC_CREATED || p->state == PROC_RUNNING)) {
		if (!p->output_done)
			log_debug_id(p->ctr->id, exec_id,
			    "exit %d reported by the agent; waiting for stdout/stderr to drain",
			    p->exit_status);
		io_exit_seen(p->io);
	}
	if (p->state == PROC_STOPPED || p->state == PROC_DELETING || p->state == PROC_CREATING ||
	    !p->exit_seen || p->starting)
		return;
	if (p->io != NULL && !p->output_done)
		return;
	p->state = PROC_STOPPED;
	if (p == p->ctr->init)
		p->ctr->paused = false;
	log_info_id(
	    p->ctr->id, exec_id, "process %u exited with status %d", p->pid, p->exit_status);
	p->exit_forward = events_publish(
	    "/tasks/exit", json_pack("{s:s, s:s, s:i, s:i, s:s}", "container_id", p->ctr->id, "id",
			       *exec_id != '\0' ? exec_id : p->ctr->id, "pid", (int)p->pid,
			       "exit_status", p->exit_status, "exited_at", p->exited_at));
	/* containerd learns of the exit before any Wait does (task_forward_progress). */
	if (forward_settled(p->exit_forward))
		task_proc_answer_waiters(p, ST_OK, "");
}

void
task_forward_progress(void)
{
	struct task_container *ctr;
	struct task_proc *p;

	for (ctr = task_table; ctr != NULL; ctr = ctr->next) {
		TASK_FOREACH_PROC (ctr, p) {
			if (p->waiters != NULL && p->exit_forward != 0 &&
			    (p->state == PROC_STOPPED || p->state == PROC_DELETING) &&
			    forward_settled(p->exit_forward))
				task_proc_answer_waiters(p, ST_OK, "");
		}
	}
}

void
task_proc_end_quiet(struct task_proc *p)
{
	p->state = PROC_STOPPED;
	task_proc_answer_waiters(p, ST_OK, "");
}

/*
 * The agent reaped p but has not sent all its output (its /tasks/exit follows that output):
 * nothing is published, but the output's drain deadline starts now, so a host FIFO nobody
 * reads cannot hold the exit back forever (io_exit_pending).
 */
static void
task_proc_exit_pending(struct task_proc *p)
{
	if (p->io == NULL || p->output_done ||
	    (p->state != PROC_CREATED && p->state != PROC_RUNNING))
		return;
	log_debug_id(p->ctr->id, p->exec_id,
	    "process %u reaped in the guest, output still draining: drain deadline started",
	    p->pid);
	io_exit_pending(p->io);
}

void
task_agent_event(const char *topic, json_t *ev)
{
	struct task_container *ctr;
	struct task_proc *p;
	bool pending;
	const char *cid = NULL, *id = NULL, *at = NULL;
	struct status st;
	int status = 255;

	if (guest_reply_string(ev, topic, "container_id", true, &cid, &st) < 0 ||
	    guest_reply_string(ev, topic, "id", false, &id, &st) < 0) {
		log_error("agent event dropped: %.*s", LOG_STR_MAX, st.msg);
		return;
	}
	if ((ctr = task_find(cid)) == NULL) {
		log_debug("agent event %.*s for unknown container %.*s", LOG_STR_MAX, topic,
		    LOG_STR_MAX, cid);
		return;
	}
	if (strcmp(topic, PROTOCOL_TOPIC_OOM) == 0) {
		log_warn_id(cid, NULL, "out of memory");
		events_publish("/tasks/oom", json_pack("{s:s}", "container_id", cid));
		return;
	}
	pending = strcmp(topic, PROTOCOL_TOPIC_EXIT_PENDING) == 0;
	if (strcmp(topic, PROTOCOL_TOPIC_EXIT) != 0 && !pending) {
		log_debug("agent event %.*s ignored", LOG_STR_MAX, topic);
		return;
	}
	p = task_find_proc(ctr, (id == NULL || strcmp(id, cid) == 0) ? "" : id);
	if (p == NULL) {
		log_debug_id(cid, id, "exit of an unknown process");
		return;
	}
	if (p->exit_seen)
		return;
	if (pending) {
		task_proc_exit_pending(p);
		return;
	}
	/* A malformed exit still ends the process (or its Waits would never answer): 255. */
	if (guest_reply_exit_status(ev, topic, &status, &st) < 0 ||
	    guest_reply_time(ev, topic, "exited_at", &at, &st) < 0) {
		log_error_id(cid, p->exec_id, "%s: reporting exit status 255", st.msg);
		status = 255;
		at = NULL;
	}
	p->exit_seen = true;
	p->exit_status = status;
	if (at != NULL)
		snprintf(p->exited_at, sizeof p->exited_at, "%s", at);
	else
		time_rfc3339_now(p->exited_at);
	task_proc_maybe_exit(p);
}

struct task_proc *
task_proc_next(struct task_container *ctr, struct task_proc *p)
{
	if (p == NULL)
		return ctr->init != NULL ? ctr->init : ctr->execs;
	return p == ctr->init ? ctr->execs : p->next;
}

/*
 * With the agent link down, can a process's exit still be learned? A VM the shim launched tells
 * us itself what became of its processes: either it died
 * (SIGCHLD, often just after its transport broke: task_vm_lost answers 255) or its agent comes
 * back (the guest's init restarts it) and the resync reports their exits. Waits park for that
 * answer rather than being told UNAVAILABLE.
 */
bool
task_vm_reports_exits(void)
{
	return shim.cfg.vm_launch == VM_LAUNCH_QEMU;
}

void
task_agent_lost(const char *why)
{
	struct task_proc *p;

	if (task_vm_reports_exits())
		return;
	/* An exit already reported is published once its output drains: keep those waiters. */
	for (struct task_container *ctr = task_table; ctr != NULL; ctr = ctr->next)
		TASK_FOREACH_PROC (ctr, p)
			if (!p->exit_seen)
				task_proc_answer_waiters(p, ST_UNAVAILABLE, why);
}

void
task_vm_lost(const char *why)
{
	struct task_proc *p;

	for (struct task_container *ctr = task_table; ctr != NULL; ctr = ctr->next)
		TASK_FOREACH_PROC (ctr, p) {
			if (p->exit_seen || (p->state != PROC_CREATED && p->state != PROC_RUNNING))
				continue;
			log_warn_id(ctr->id, p->exec_id, "%s: reporting exit status 255", why);
			p->exit_seen = true;
			p->exit_status = 255;
			time_rfc3339_now(p->exited_at);
			task_proc_maybe_exit(p);
		}
}

void
task_shutdown(void)
{
	struct task_container *ctr;
	struct task_proc *p;

	while ((ctr = task_table) != NULL) {
		TASK_FOREACH_PROC (ctr, p)
			task_proc_answer_waiters(p, ST_UNAVAILABLE, "the shim is shutting down");
		task_container_remove(ctr);
	}
}

/* Drop p's waiters parked by connection c (it closed: nobody is left to answer). */
static unsigned
task_proc_drop_waiters(struct task_proc *p, struct rpc_conn *c)
{
	struct task_waiter **wp, *w;
	unsigned n = 0;

	for (wp = &p->waiters; (w = *wp) != NULL;) {
		if (w->conn != c) {
			wp = &w->next;
			continue;
		}
		*wp = w->next;
		rpc_conn_unref(w->conn);
		free(w);
		n++;
	}
	return n;
}

unsigned
task_conn_closed(struct rpc_conn *c)
{
	struct task_proc *p;
	unsigned n = 0;

	for (struct task_container *ctr = task_table; ctr != NULL; ctr = ctr->next)
		TASK_FOREACH_PROC (ctr, p)
			n += task_proc_drop_waiters(p, c);
	return n;
}

/* ---- after an agent outage ---- */

/* One process to ask about: a copy of its ids, and the agent's answer. */
struct task_resync_item {
	char *id, *exec_id;
	struct status st;
	json_t *resp;
};

struct task_resync_job {
	struct task_resync_item *items;
	size_t n;
};

/* Worker: ProcessState for each process, one after the other, without waiting for a link. */
static void
task_resync_run(void *arg)
{
	struct task_resync_job *j = arg;

	for (size_t i = 0; i < j->n; i++) {
		struct task_resync_item *it = &j->items[i];
		cleanup_json json_t *req =
		    json_pack("{s:s, s:s}", "id", it->id, "exec_id", it->exec_id);

		guest_call("ProcessState", req, (int)shim.cfg.connect_timeout_ms, false, &it->resp,
		    &it->st);
	}
}

/* Loop: the exit of p is known now (from the agent, or unknown: 255): publish it as usual. */
static void
task_resync_exit(struct task_proc *p, int status, const char *at)
{
	p->exit_seen = true;
	p->exit_status = status;
	if (at != NULL && *at != '\0')
		snprintf(p->exited_at, sizeof p->exited_at, "%s", at);
	else
		time_rfc3339_now(p->exited_at);
	task_proc_maybe_exit(p);
}

/* Loop: apply the answers to processes that are still running and whose exit is unseen. */
static void
task_resync_done(void *arg)
{
	struct task_resync_job *j = arg;

	for (size_t i = 0; i < j->n; i++) {
		struct task_resync_item *it = &j->items[i];
		struct task_container *ctr = task_find(it->id);
		struct task_proc *p = ctr != NULL ? task_find_proc(ctr, it->exec_id) : NULL;
		const char *status;

		if (p != NULL && p->state == PROC_RUNNING && !p->exit_seen) {
			const char *at = NULL;
			int code = 255;

			status = NULL;
			if (it->st.code == ST_OK && guest_reply_string(it->resp, "ProcessState",
							"status", true, &status, &it->st) < 0)
				log_error_id(it->id, it->exec_id, "resync: %s", it->st.msg);
			if (it->st.code == ST_OK && strcmp(status, PROTOCOL_STATE_STOPPED) == 0) {
				if (guest_reply_exit_status(
					it->resp, "ProcessState", &code, &it->st) < 0 ||
				    guest_reply_time(
					it->resp, "ProcessState", "exited_at", &at, &it->st) < 0) {
					log_error_id(it->id, it->exec_id,
					    "resync: %s: reporting exit status 255", it->st.msg);
					code = 255;
					at = NULL;
				}
				log_warn_id(it->id, it->exec_id,
				    "exit missed while the agent link was down: recovered from "
				    "ProcessState");
				task_resync_exit(p, code, at);
			} else if (it->st.code == ST_NOT_FOUND) {
				log_warn_id(it->id, it->exec_id,
				    "the agent does not know process %u (it restarted?): its exit "
				    "status is unknown, reporting 255",
				    p->pid);
				task_resync_exit(p, 255, NULL);
			} else if (it->st.code == ST_OK && status != NULL &&
				   strcmp(status, PROTOCOL_STATE_EXITED) == 0) {
				/* Its exit-pending notice may have been lost with the link. */
				task_proc_exit_pending(p);
			} else if (it->st.code != ST_OK) {
				/* The link dropped again: the next reconnect asks again. */
				log_warn_id(it->id, it->exec_id, "resync: %s", it->st.msg);
			}
		}
		free(it->id);
		free(it->exec_id);
		json_decref(it->resp);
	}
	free(j->items);
	free(j);
}

/* Add p to the job if the shim believes it running and has not seen its exit. */
static void
task_resync_add(struct task_resync_job *j, struct task_proc *p)
{
	if (p->state != PROC_RUNNING || p->exit_seen)
		return;
	j->items[j->n].id = xstrdup(p->ctr->id);
	j->items[j->n].exec_id = xstrdup(p->exec_id);
	j->n++;
}

void
task_agent_resync(void)
{
	struct task_resync_job *j;
	struct task_proc *p;
	struct status st;
	size_t n = 0;

	for (struct task_container *ctr = task_table; ctr != NULL; ctr = ctr->next)
		TASK_FOREACH_PROC (ctr, p)
			if (p->state == PROC_RUNNING && !p->exit_seen)
				n++;
	if (n == 0)
		return;
	j = xcalloc(1, sizeof *j);
	j->items = xcalloc(n, sizeof *j->items);
	for (struct task_container *ctr = task_table; ctr != NULL; ctr = ctr->next)
		TASK_FOREACH_PROC (ctr, p)
			task_resync_add(j, p);
	log_info("agent link up: asking about %zu running process(es)", j->n);
	if (worker_submit(task_resync_run, task_resync_done, j, &st) < 0) {
		/* Nothing asked: the answers stay empty and the job is just freed. */
		log_warn("resync: %s", st.msg);
		task_resync_done(j);
	}
}

const struct guest_ops task_guest_ops = {
    .event = task_agent_event,
    .lost = task_agent_lost,
    .resync = task_agent_resync,
};

void
task_init(void (*request_exit)(void))
{
	task_exit_fn = request_exit;
}

void
task_request_exit(void)
{
	task_exit_fn();
}
