/*
 * control-process.c: requests about a container or process that exists: SignalProcess,
 * CloseStdin, ResizePty, PauseContainer, ResumeContainer, UpdateContainer, Stats and Pids.
 *
 * Runs on the loop thread. Each handler validates its payload, then answers at once or hands
 * a struct control_call to the runner, whose callback answers and frees it.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "msg.h"
#include "runner.h"
#include "stats.h"
#include "util.h"

/* SignalProcess: deliver a signal to a live process through the runner. */
void
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
void
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
void
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

void
control_pause(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	control_pause_resume(conn, sid, payload, true);
}

void
control_resume(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	control_pause_resume(conn, sid, payload, false);
}

/* UpdateContainer: hand the OCI resources to the runner. */
void
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
void
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
void
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
