/*
 * control-call.c: a request answered later (struct control_call) and the field helpers every
 * handler shares.
 *
 * Runs on the loop thread. A control_call holds a reference on its connection, and on the
 * container and process it is about, until control_call_done() answers and frees it: the runner
 * callback or helper child that finishes the request owns the call until then. The helpers
 * read a payload with the msg_get_* accessors, so an error names the field.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "msg.h"
#include "util.h"

struct control_call *
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

void
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

void
control_call_done(struct control_call *k, const struct status *st, json_t *result)
{
	if (st->code != ST_OK)
		rpc_conn_respond_status(k->conn, k->sid, st);
	else
		rpc_conn_respond(k->conn, k->sid, ST_OK, "", result);
	control_call_free(k);
}

void
control_runner_done(const struct status *st, json_t *result, void *arg)
{
	struct control_call *k = arg;

	if (st->code != ST_OK)
		log_warn_id(k->c != NULL ? k->c->id : NULL, k->p != NULL ? k->p->exec_id : NULL,
		    "%s: %s", k->method, st->msg);
	control_call_done(k, st, NULL);
}

int
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

int
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

int
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

int
control_check_settled(struct container *c, struct status *st)
{
	if (c->creating)
		return status_set(st, ST_FAILED_PRECONDITION, "container %s: being created", c->id);
	if (c->deleting)
		return status_set(st, ST_FAILED_PRECONDITION, "container %s: being deleted", c->id);
	return 0;
}
