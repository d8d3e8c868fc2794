/*
 * control-lifecycle.c: the life of containers and processes: CreateContainer, StartProcess,
 * ExecProcess, DeleteProcess and ProcessState.
 *
 * Runs on the loop thread. CreateContainer and DeleteProcess hand a struct control_call to the
 * runner and mark the container creating / deleting until its callback, so no other lifecycle
 * call races the runner. A StartProcess whose declared streams have not all attached parks
 * (never blocking the loop): the struct proc keeps a reference on its connection until the
 * process observer reports the streams attached (control_streams_changed), the process is
 * removed (control_proc_removed) or AGENT_START_WAIT_MS passes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "msg.h"
#include "runner.h"
#include "stats.h"
#include "util.h"

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
	 * The oci runner, and the process runner in a real guest, give the container a cgroup of
	 * its own: watch its OOM-kill count. (Elsewhere the process runner's processes share the
	 * agent's cgroup, whose count is not theirs.)
	 */
	if ((agent.runner == &runner_oci_ops || k->c->cgroup != NULL) && k->c->init != NULL &&
	    k->c->init->pid > 0 && (k->c->oom_file = stats_oom_file(k->c->init->pid)) != NULL)
		k->c->oom_kills = stats_oom_count(k->c->oom_file);
	res = json_pack("{s:i}", "pid", k->c->init != NULL ? (int)k->c->init->pid : 0);
	control_call_done(k, st, res);
	json_decref(res);
}

/* CreateContainer: validate, add the container and its init, hand it to the runner. */
void
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
void
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
void
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
void
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
void
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
