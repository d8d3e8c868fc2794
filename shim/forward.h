/*
 * forward.h: task events to containerd through Events/Forward on its ttrpc socket.
 *
 * When containerd starts a shim it puts its own ttrpc socket in TTRPC_ADDRESS; every event
 * the shim publishes is then also sent there, in order, as a protobuf ForwardRequest. The
 * sending runs on a thread of its own, so containerd being slow or away never blocks the
 * loop: events queue (bounded; the oldest is dropped with a log line) and are retried,
 * reconnecting with a backoff.
 *
 * A /tasks/exit must reach containerd before the Wait it answers: forward_settled() tells the
 * task code whether an event is done with (acknowledged by containerd, refused by it, or
 * dropped), and forward.c calls the progress callback given to forward_start (the task
 * table's task_forward_progress) on the loop thread whenever more events are. While containerd
 * cannot be reached at all every event counts as settled, so its absence holds no Wait.
 *
 * Every function runs on the loop thread.
 */
#ifndef VMSHIM_FORWARD_H
#define VMSHIM_FORWARD_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"

/*
 * Remember where to forward: containerd's ttrpc address (TTRPC_ADDRESS: a path, or
 * unix://PATH; NULL or "" turns forwarding off) and the shim's namespace. Before loop_run.
 */
void forward_configure(const char *address, const char *ns);
/*
 * Start the forwarding thread on base (when an address was configured; otherwise nothing).
 * loop_run calls it before confining the threads. progress runs on the loop thread whenever
 * more events are settled. -1 with *st when the thread cannot start.
 */
int forward_start(struct event_base *base, void (*progress)(void), struct status *st);
/* Queue one event (borrowed); its sequence number, 0 when forwarding is off. */
uint64_t forward_event(const char *topic, const char *timestamp, json_t *event);
/* Event seq (0: none) is delivered, refused, dropped, or containerd is out of reach. */
bool forward_settled(uint64_t seq);
/*
 * Stop: give the thread up to flush_ms to deliver what is queued, then make it give up, join
 * it and free the queue (what is left is logged). Idempotent.
 */
void forward_stop(int flush_ms);

/* Counters for tests and logs. */
struct forward_stats {
	uint64_t queued, delivered, refused, dropped, reconnects;
};
void forward_get_stats(struct forward_stats *out);

#endif
