/*
 * control.h: the internal header of the Agent service, shared by control*.c only, in one
 * section per file.
 *
 * control.c (connections and the method table) calls the handlers of control-lifecycle.c,
 * control-process.c, control-mount.c and control-event.c; these use control-call.c, and
 * control-lifecycle.c / control-mount.c the overlap switch of control-overlap.c. No file calls
 * up: control-overlap.c reaches the connections through the callback control_init() gives it.
 * Everything runs on the loop thread.
 */
#ifndef VMSHIM_AGENT_CONTROL_H
#define VMSHIM_AGENT_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "rpc.h"
#include "status.h"

/* A method handler: answers (now or later) every request it is given. */
typedef void (*control_fn)(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);

/* ---- control-call.c ---- */

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

struct control_call *control_call_new(
    struct rpc_conn *conn, uint32_t sid, const char *method, struct container *c, struct proc *p);
/* Drop the call's references and free it. */
void control_call_free(struct control_call *k);
/* Answer with the status or the result (a plain {} when result is NULL) and free the call. */
void control_call_done(struct control_call *k, const struct status *st, json_t *result);
/* The generic runner callback: answer {} or the error. */
void control_runner_done(const struct status *st, json_t *result, void *arg);
/* Read payload.id (and payload.exec_id) and find the container (and process). */
int control_lookup(
    json_t *payload, bool want_proc, struct container **cp, struct proc **pp, struct status *st);
/* Read payload.terminal and the three stream booleans. */
int control_get_stdio(json_t *payload, bool declared[STDIO_N], bool *terminal, struct status *st);
/* A process object needs a non-empty args array of strings. */
int control_check_process(json_t *process, const char *where, struct status *st);
/* A container whose CreateContainer or DeleteProcess runs accepts no lifecycle call. */
int control_check_settled(struct container *c, struct status *st);

/* ---- control-event.c ---- */

/* Publish an event to every subscriber (queued while nobody subscribes). */
void control_publish(const char *topic, json_t *event);
/* The process observer's exited / exit_pending (struct proc_observer). */
void control_publish_exit(struct proc *p);
void control_publish_exit_pending(struct proc *p);
/* SubscribeEvents. */
void control_subscribe(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
/* The connection closed: forget its subscription (if it had one). */
void control_event_forget(struct rpc_conn *conn);
/* Shutdown: drop the backlog. */
void control_event_clear(void);

/* ---- control-overlap.c ---- */

/* The overlap switch's action when two bring-ups meet (drop every control connection). */
void control_bringup_init(void (*drop_all)(void));
/* A container's bring-up starts / ends. */
void control_bringup_begin(const char *id);
void control_bringup_end(const char *id);
/* Shutdown: forget every open span. */
void control_bringup_clear(void);

/* ---- control-lifecycle.c ---- */

void control_create(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_start(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_exec(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_delete(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_process_state(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
/* The process observer's streams_changed / removed (struct proc_observer). */
void control_streams_changed(struct proc *p);
void control_proc_removed(struct proc *p);

/* ---- control-process.c ---- */

void control_signal(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_close_stdin(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_resize(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_pause(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_resume(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_update(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_stats(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_pids(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);

/* ---- control-mount.c ---- */

void control_mount(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);
void control_unmount(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload);

#endif
