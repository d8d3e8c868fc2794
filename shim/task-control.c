/*
 * task-control.c: Kill, Pause, Resume, Update, ResizePty, CloseIO, Wait and Shutdown.
 *
 * Methods that only need the agent go through task_forward(): a worker makes the one agent
 * call and the completion (loop thread) answers, optionally after updating the table through
 * an on_ok hook. CloseIO and Wait never leave the loop thread: CloseIO hands the stdin EOF to
 * the stdio bridge (io_close_stdin sends it after every byte already read), and Wait parks the
 * request on the process (a task_waiter holding a connection reference) until the exit is
 * published, so a thousand Waits cost a thousand small structs and no thread.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "io.h"
#include "shim.h"
#include "util.h"

struct task_forward_job {
	struct task_call *call;
	const char *method; /* static string */
	json_t *req;	    /* owned */
	void (*on_ok)(struct task_call *call, json_t *resp);
	json_t *resp;
	struct status st;
	bool ran; /* false: shutdown handed the job back unrun (worker.c) */
};

static void
task_forward_run(void *arg)
{
	struct task_forward_job *j = arg;

	j->ran = true;
	guest_call(j->method, j->req, j->call->timeout_ms, true, &j->resp, &j->st);
}

static void
task_forward_done(void *arg)
{
	struct task_forward_job *j = arg;

	if (!j->ran)
		task_call_finish(j->call, ST_UNAVAILABLE, "the shim is shutting down", NULL);
	else if (j->st.code != ST_OK)
		task_call_finish_status(j->call, &j->st);
	else if (j->on_ok != NULL)
		j->on_ok(j->call, j->resp);
	else
		task_call_finish(j->call, ST_OK, "", NULL);
	json_decref(j->req);
	json_decref(j->resp);
	free(j);
}

/* Forward one call to the agent on a worker; steals agent_payload; answers the call. */
void
task_forward(struct task_call *call, const char *agent_method, json_t *agent_payload,
    void (*on_ok)(struct task_call *call, json_t *resp))
{
	struct task_forward_job *j = xcalloc(1, sizeof *j);
	struct status st;

	j->call = call;
	j->method = agent_method;
	j->req = agent_payload;
	j->on_ok = on_ok;
	if (worker_submit(task_forward_run, task_forward_done, j, &st) < 0) {
		json_decref(j->req);
		free(j);
		task_call_finish_status(call, &st);
	}
}

void
task_kill(struct task_call *call)
{
	const char *id, *exec_id;
	uint32_t sig = 0;
	bool all = false;
	struct task_proc *p;
	struct status st;

	if ((p = task_call_proc(call, &id, &exec_id)) == NULL)
		return;
	if (msg_get_u32(call->req.payload, "payload", "signal", true, &sig, &st) < 0 ||
	    msg_get_bool(call->req.payload, "payload", "all", false, &all, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	if (sig == 0 || sig > 64) {
		task_call_finish(call, ST_INVALID_ARGUMENT, "payload.signal: must be 1..64", NULL);
		return;
	}
	if (p->state == PROC_STOPPED || p->state == PROC_DELETING) {
		task_call_finish(call, ST_NOT_FOUND, "process already finished", NULL);
		return;
	}
	log_info_id(id, exec_id, "signal %u%s", sig, all ? " (all)" : "");
	task_forward(call, "SignalProcess",
	    json_pack("{s:s, s:s, s:i, s:b}", "id", id, "exec_id", exec_id, "signal", (int)sig,
		"all", all),
	    NULL);
}

/* Pause/Resume completion: flip the flag, publish, answer. */
static void
task_paused_ok(struct task_call *call, json_t *resp, bool paused)
{
	const char *id = json_string_value(json_object_get(call->req.payload, "id"));
	struct task_container *ctr = task_find(id);

	if (ctr != NULL && ctr->init != NULL && ctr->init->state == PROC_RUNNING) {
		ctr->paused = paused;
		events_publish(paused ? "/tasks/paused" : "/tasks/resumed",
		    json_pack("{s:s}", "container_id", id));
	}
	task_call_finish(call, ST_OK, "", NULL);
}

static void
task_pause_ok(struct task_call *call, json_t *resp)
{
	task_paused_ok(call, resp, true);
}

static void
task_resume_ok(struct task_call *call, json_t *resp)
{
	task_paused_ok(call, resp, false);
}

static void
task_pause_resume(struct task_call *call, bool pause)
{
	const char *id;
	struct task_proc *p;

	if ((p = task_call_proc(call, &id, NULL)) == NULL)
		return;
	if (p != p->ctr->init) {
		task_call_finish(call, ST_INVALID_ARGUMENT,
		    "payload.exec_id: pause and resume apply to the container", NULL);
		return;
	}
	if (p->state != PROC_RUNNING) {
		task_call_finish(call, ST_FAILED_PRECONDITION, "container is not running", NULL);
		return;
	}
	if (p->ctr->paused == pause) {
		task_call_finish(call, ST_FAILED_PRECONDITION,
		    pause ? "container is already paused" : "container is not paused", NULL);
		return;
	}
	task_forward(call, pause ? "PauseContainer" : "ResumeContainer",
	    json_pack("{s:s}", "id", id), pause ? task_pause_ok : task_resume_ok);
}

void
task_pause(struct task_call *call)
{
	task_pause_resume(call, true);
}

void
task_resume(struct task_call *call)
{
	task_pause_resume(call, false);
}

void
task_update(struct task_call *call)
{
	const char *id;
	json_t *res = NULL, *ann = NULL;
	struct task_proc *p;
	struct status st;

	if ((p = task_call_proc(call, &id, NULL)) == NULL)
		return;
	if (msg_get_object(call->req.payload, "payload", "resources", false, &res, &st) < 0 ||
	    msg_get_object(call->req.payload, "payload", "annotations", false, &ann, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	if (p->state != PROC_RUNNING && p->state != PROC_CREATED) {
		task_call_finish(call, ST_FAILED_PRECONDITION, "container is not running", NULL);
		return;
	}
	task_forward(call, "UpdateContainer",
	    json_pack("{s:s, s:o}", "id", id, "resources",
		res != NULL ? json_deep_copy(res) : json_object()),
	    NULL);
}

void
task_resize_pty(struct task_call *call)
{
	const char *id, *exec_id;
	uint32_t w = 0, h = 0;
	struct task_proc *p;
	struct status st;

	if ((p = task_call_proc(call, &id, &exec_id)) == NULL)
		return;
	if (msg_get_u32(call->req.payload, "payload", "width", true, &w, &st) < 0 ||
	    msg_get_u32(call->req.payload, "payload", "height", true, &h, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	if (w > 65535 || h > 65535) {
		task_call_finish(
		    call, ST_INVALID_ARGUMENT, "payload.width/height: must be at most 65535", NULL);
		return;
	}
	if (!p->terminal) {
		task_call_finish(call, ST_FAILED_PRECONDITION, "process has no terminal", NULL);
		return;
	}
	task_forward(call, "ResizePty",
	    json_pack("{s:s, s:s, s:i, s:i}", "id", id, "exec_id", exec_id, "width", (int)w,
		"height", (int)h),
	    NULL);
}

void
task_close_io(struct task_call *call)
{
	const char *id, *exec_id;
	bool in = false;
	struct task_proc *p;
	struct status st;

	if ((p = task_call_proc(call, &id, &exec_id)) == NULL)
		return;
	if (msg_get_bool(call->req.payload, "payload", "stdin", false, &in, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	if (in && p->io != NULL && *p->stdin_path != '\0') {
		log_debug_id(id, exec_id, "closing stdin");
		io_close_stdin(p->io);
	}
	task_call_finish(call, ST_OK, "", NULL);
}

void
task_wait(struct task_call *call)
{
	const char *id;
	struct task_proc *p;
	struct task_waiter *w;

	if ((p = task_call_proc(call, &id, NULL)) == NULL)
		return;
	/* A stopped process's exit reaches containerd first: until then, Wait holds. */
	if ((p->state == PROC_STOPPED || p->state == PROC_DELETING) &&
	    forward_settled(p->exit_forward)) {
		task_call_finish(call, ST_OK, "",
		    json_pack(
			"{s:i, s:s}", "exit_status", p->exit_status, "exited_at", p->exited_at));
		return;
	}
	/* Nobody could report the exit: answer now rather than park forever (docs/CONTRACT.md 5.6).
	 */
	if (!p->exit_seen && !guest_connected() && !task_vm_reports_exits()) {
		task_call_finish(call, ST_UNAVAILABLE,
		    "guest agent is not connected: the exit cannot be observed", NULL);
		return;
	}
	w = xcalloc(1, sizeof *w);
	w->conn = rpc_conn_ref(call->conn);
	w->stream_id = call->stream_id;
	w->next = p->waiters;
	p->waiters = w;
	task_call_free(call);
}

void
task_shutdown_method(struct task_call *call)
{
	bool now = false;
	struct status st;

	if (msg_get_bool(call->req.payload, "payload", "now", false, &now, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	task_call_finish(call, ST_OK, "", NULL);
	if (now || task_table_empty()) {
		log_info("Shutdown%s: exiting", now ? " (now)" : "");
		task_request_exit();
	} else {
		/*
		 * containerd asks Shutdown after deleting each task; the group's other containers
		 * (and new ones joining it) keep being served until the last task is deleted.
		 */
		log_info("Shutdown: exiting once the last task is deleted");
		shim.exit_when_empty = true;
	}
}
