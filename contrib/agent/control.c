/*
 * control.c: the Agent service (docs/PROTOCOL.md section 2): its connections and method table.
 *
 * Runs on the loop thread only. Owns the list of live control connections (plain pointers,
 * forgotten in on_close, as rpc-server.c allows). Each method is one entry of
 * control_methods[]; its handler lives in the control-*.c file of its family (control.h) and
 * validates every field with the msg_get_* accessors (the error names the field), then either
 * answers at once or hands a struct control_call (control-call.c: references on the
 * connection, the container and the process) to the runner, whose callback answers and frees
 * it. control_init() registers the control service's process observer with proc.c and gives
 * the overlap switch (control-overlap.c) its action, dropping every connection.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "msg.h"
#include "runner.h"
#include "util.h"

struct control_client {
	LIST_ENTRY(control_client) entry;
	struct rpc_conn *conn; /* plain pointer: forgotten in on_close */
};

static LIST_HEAD(, control_client) control_clients = LIST_HEAD_INITIALIZER(control_clients);

/* ---- the method table ---- */

/* Ping: the agent's version, pid and runner. */
static void
control_ping(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	json_t *res = json_pack("{s:s, s:i, s:s}", "version", AGENT_VERSION, "pid", (int)getpid(),
	    "runner", agent.runner->name);

	rpc_conn_respond(conn, sid, ST_OK, "", res);
	json_decref(res);
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
	control_event_forget(conn);
	LIST_REMOVE(cl, entry);
	free(cl);
}

static const struct rpc_server_ops control_ops = {
    .on_request = control_on_request,
    .on_close = control_on_close,
};

static const struct proc_observer control_proc_observer = {
    .exited = control_publish_exit,
    .exit_pending = control_publish_exit_pending,
    .streams_changed = control_streams_changed,
    .removed = control_proc_removed,
};

void
control_init(void)
{
	proc_observe(&control_proc_observer);
	control_bringup_init(control_close_all);
}

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
	control_close_all();
	control_event_clear();
	control_bringup_clear();
}
