/*
 * protocol.h: the names and rules both ends of a vmshim wire agree on.
 *
 * Everything here is spoken by more than one program: the shim (to containerd and to the
 * guest agent), the agent, vmshimctl and the test clients. Keeping each name once means a
 * rename or a tightened rule cannot leave one side behind. The wire formats themselves are
 * described in docs/CONTRACT.md (containerd's side) and docs/PROTOCOL.md (the agent's side).
 *
 * What is deliberately not here: the shim's and the agent's process state enums. They track
 * different machines (the shim's includes creating and deleting; the agent's, a reaped process
 * whose output still drains), so only the state names the agent reports (ProcessState) are
 * shared.
 */
#ifndef VMSHIM_PROTOCOL_H
#define VMSHIM_PROTOCOL_H

#include <stdbool.h>

#include "status.h"

/* ttrpc services. */
#define PROTOCOL_TASK_SERVICE	"containerd.task.v2.Task"
#define PROTOCOL_EVENTS_SERVICE "containerd.events.v1.Events"
#define PROTOCOL_AGENT_SERVICE	"vmshim.agent.v1.Agent"
/*
 * containerd's own Events service, which a shim started by containerd calls (TTRPC_ADDRESS),
 * and the method that carries one event.
 */
#define PROTOCOL_CONTAINERD_EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define PROTOCOL_CONTAINERD_EVENTS_FORWARD "Forward"

/* The agent's default vsock ports: control (ttrpc) and stdio streams. */
#define PROTOCOL_AGENT_PORT  1024u
#define PROTOCOL_STREAM_PORT 1025u

/* Events the agent publishes to the shim (SubscribeEvents). */
#define PROTOCOL_TOPIC_EXIT "/tasks/exit"
#define PROTOCOL_TOPIC_OOM  "/tasks/oom"
/* A process was reaped but its output still drains; the exit event follows. */
#define PROTOCOL_TOPIC_EXIT_PENDING "/agent/exit-pending"

/* The process states the agent's ProcessState reports. */
#define PROTOCOL_STATE_CREATED "created"
#define PROTOCOL_STATE_RUNNING "running"
#define PROTOCOL_STATE_EXITED  "exited" /* reaped, output still draining */
#define PROTOCOL_STATE_STOPPED "stopped"

/* The stdio streams of a process, in the order of their file descriptors. */
enum stdio_kind {
	STDIO_IN = 0,
	STDIO_OUT = 1,
	STDIO_ERR = 2,
	STDIO_N = 3,
};

/* "stdin", "stdout" or "stderr" (the names a stream's hello carries); "?" out of range. */
const char *stdio_kind_name(enum stdio_kind k);

/*
 * Container and exec ids: 1..PROTOCOL_ID_MAX bytes of [A-Za-z0-9_.-], not starting with '.'
 * or '-'. Every id containerd creates fits (it allows 76 such characters), and each is safe
 * as a file name component (the agent keeps per-container state under the id).
 */
#define PROTOCOL_ID_MAX 128

/*
 * Check id against the rule; field names it in the message ("payload.<field>: ..."). An empty
 * id passes only when allow_empty (an exec id of "" names the init process). -1 with
 * INVALID_ARGUMENT in *st otherwise.
 */
int protocol_check_id(const char *field, const char *id, bool allow_empty, struct status *st);

#endif
