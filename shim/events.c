/*
 * events.c: the Events service (Subscribe) and event publication, on the loop thread.
 *
 * A subscriber is an open stream on a client connection (a referenced rpc_conn and the
 * stream id of its Subscribe request). events_publish() encodes an event once and sends it to
 * every subscriber as a data frame, in publication order, which is the order the task code
 * produces containerd's events in. A subscriber whose unread output exceeds
 * EVENTS_SUBSCRIBER_LIMIT (it stopped reading) is dropped with a log line rather than allowed
 * to grow the shim's memory (docs/CONTRACT.md 5.4); one whose connection closed is dropped
 * silently. Each event also goes to containerd when forwarding is on (forward.c);
 * events_publish returns its forwarding sequence number so the caller can hold what must
 * follow its delivery.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "frame.h"
#include "shim.h"
#include "util.h"

#define EVENTS_SUBSCRIBER_LIMIT (1u * 1024 * 1024)

struct events_sub {
	struct rpc_conn *conn; /* referenced */
	uint32_t stream_id;
	struct events_sub *next;
};

static struct events_sub *events_subs;

void
events_subscribe(struct rpc_conn *c, uint32_t stream_id, struct msg_request *req)
{
	struct events_sub *s;

	msg_request_clear(req);
	s = xcalloc(1, sizeof *s);
	s->conn = rpc_conn_ref(c);
	s->stream_id = stream_id;
	s->next = events_subs;
	events_subs = s;
	rpc_conn_respond(c, stream_id, ST_OK, "", NULL);
	log_debug("new event subscriber on fd %d stream %u", rpc_conn_fd(c), stream_id);
}

static void
events_sub_free(struct events_sub *s)
{
	rpc_conn_unref(s->conn);
	free(s);
}

uint64_t
events_publish(const char *topic, json_t *event)
{
	char ts[TIME_RFC3339_LEN];
	struct events_sub **pp, *s;
	cleanup_free char *buf = NULL;
	size_t len;
	uint64_t seq;

	time_rfc3339_now(ts);
	buf = msg_event_encode(topic, ts, event, &len);
	log_debug("event %s", topic);
	seq = forward_event(topic, ts, event);
	json_decref(event);
	for (pp = &events_subs; (s = *pp) != NULL;) {
		if (rpc_conn_is_closed(s->conn)) {
			*pp = s->next;
			events_sub_free(s);
			continue;
		}
		if (rpc_conn_send_data(
			s->conn, s->stream_id, 0, buf, len, EVENTS_SUBSCRIBER_LIMIT) < 0) {
			log_warn("dropping event subscriber on fd %d: %zu bytes unread",
			    rpc_conn_fd(s->conn), rpc_conn_output_pending(s->conn));
			*pp = s->next;
			rpc_conn_close(s->conn);
			events_sub_free(s);
			continue;
		}
		pp = &s->next;
	}
	return seq;
}

unsigned
events_conn_closed(struct rpc_conn *c)
{
	struct events_sub **pp, *s;
	unsigned n = 0;

	for (pp = &events_subs; (s = *pp) != NULL;) {
		if (s->conn != c) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		events_sub_free(s);
		n++;
	}
	return n;
}

void
events_shutdown(void)
{
	struct events_sub *s;

	while ((s = events_subs) != NULL) {
		events_subs = s->next;
		/* Tell the subscriber the stream ends (remote closed, no data). */
		rpc_conn_send_data(s->conn, s->stream_id,
		    FRAME_FLAG_REMOTE_CLOSED | FRAME_FLAG_NO_DATA, NULL, 0, (size_t)-1);
		events_sub_free(s);
	}
}
