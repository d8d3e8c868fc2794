/*
 * task-query.c: State, Pids, Stats and Connect.
 *
 * State and Connect are answered on the loop thread from the shim's own table, so they keep
 * working while the agent is down (docs/CONTRACT.md 5.6); Pids and Stats ask the agent through
 * task_forward() and reshape its answer on the loop thread.
 */
#include "config.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "util.h"

/*
 * State is the call a runtime makes most (containerd polls it), so its answer is a flat field
 * list encoded straight into the response (task_call_finish_fields) rather than a json_t tree
 * built with json_pack and dumped: half of the call's cost before (docs/PERFORMANCE.md).
 */
void
task_state(struct task_call *call)
{
	const char *id, *exec_id;
	struct task_proc *p;
	bool stopped;

	if ((p = task_call_proc(call, &id, &exec_id)) == NULL)
		return;
	stopped = p->state == PROC_STOPPED;
	const struct msg_field fields[] = {
	    MSG_STR("id", id),
	    MSG_STR("bundle", p->ctr->bundle),
	    MSG_INT("pid", (int64_t)p->pid),
	    MSG_STR("status", task_status_name(p)),
	    MSG_STR("stdin", p->stdin_path),
	    MSG_STR("stdout", p->stdout_path),
	    MSG_STR("stderr", p->stderr_path),
	    MSG_BOOL("terminal", p->terminal),
	    MSG_INT("exit_status", stopped ? (int64_t)p->exit_status : 0),
	    MSG_STR("exited_at", stopped ? p->exited_at : ""),
	    MSG_STR("exec_id", exec_id),
	};
	task_call_finish_fields(call, fields, sizeof fields / sizeof fields[0]);
}

/* The container's id, looked up; NULL after answering when it is unknown. */
static struct task_container *
task_query_container(struct task_call *call, const char **idp)
{
	struct task_proc *p = task_call_proc(call, idp, NULL);

	return p != NULL ? p->ctr : NULL;
}

/* Only {pid} objects go back to the runtime, each checked. */
static void
task_pids_ok(struct task_call *call, json_t *resp)
{
	json_t *procs = json_object_get(resp, "processes"), *out, *e;
	struct status st;
	uint32_t pid;
	size_t i;

	if (!json_is_array(procs)) {
		task_call_finish(call, ST_INTERNAL,
		    "malformed reply from the agent: Pids.processes: expected an array", NULL);
		return;
	}
	out = json_array();
	json_array_foreach (procs, i, e) {
		if (guest_reply_u32(e, "Pids.processes[]", "pid", true, &pid, &st) < 0) {
			json_decref(out);
			task_call_finish_status(call, &st);
			return;
		}
		json_array_append_new(out, json_pack("{s:i}", "pid", (int)pid));
	}
	task_call_finish(call, ST_OK, "", json_pack("{s:o}", "processes", out));
}

void
task_pids(struct task_call *call)
{
	const char *id;

	if (task_query_container(call, &id) == NULL)
		return;
	task_forward(call, "Pids", json_pack("{s:s}", "id", id), task_pids_ok);
}

/* One non-negative counter of the agent's Stats reply, e.g. memory.usage_bytes. */
static int
task_stats_counter(
    json_t *resp, const char *group, const char *key, json_int_t *out, struct status *st)
{
	char where[32];
	json_t *g = NULL;
	int64_t v;

	snprintf(where, sizeof where, "Stats.%s", group);
	if (msg_get_object(resp, "Stats", group, true, &g, st) < 0 ||
	    msg_get_i64(g, where, key, true, &v, st) < 0) {
		char first[STATUS_MSG_MAX];

		snprintf(first, sizeof first, "%s", st->msg);
		return status_set(st, ST_INTERNAL, "malformed reply from the agent: %s", first);
	}
	if (v < 0)
		return status_set(
		    st, ST_INTERNAL, "malformed reply from the agent: %s.%s: negative", where, key);
	*out = (json_int_t)v;
	return 0;
}

/* The counters the runtime gets are checked; the answer is the agent's object. */
static void
task_stats_ok(struct task_call *call, json_t *resp)
{
	json_int_t v;
	struct status st;

	if (task_stats_counter(resp, "cpu", "usage_usec", &v, &st) < 0 ||
	    task_stats_counter(resp, "memory", "usage_bytes", &v, &st) < 0 ||
	    task_stats_counter(resp, "memory", "limit_bytes", &v, &st) < 0 ||
	    task_stats_counter(resp, "pids", "current", &v, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	task_call_finish(call, ST_OK, "", json_pack("{s:O}", "stats", resp));
}

void
task_stats(struct task_call *call)
{
	const char *id;

	if (task_query_container(call, &id) == NULL)
		return;
	task_forward(call, "Stats", json_pack("{s:s}", "id", id), task_stats_ok);
}

void
task_connect(struct task_call *call)
{
	const char *id = "";
	struct task_container *ctr;
	struct status st;
	uint32_t task_pid = 0;

	if (msg_get_string(call->req.payload, "payload", "id", false, &id, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	ctr = task_find(id);
	if (ctr != NULL && ctr->init != NULL)
		task_pid = ctr->init->pid;
	task_call_finish(call, ST_OK, "",
	    json_pack("{s:i, s:i, s:s}", "shim_pid", (int)shim.pid, "task_pid", (int)task_pid,
		"version", SHIM_VERSION));
}
