/*
 * guest-reply.c: typed reads of the fields of the agent's replies and events.
 *
 * The guest is a peer like any other: every field the shim takes from an agent reply or
 * event is read through these, so a missing field or a wrong type is an error naming the
 * agent method and the field, with the code INTERNAL ("the guest sent something malformed"),
 * never a silent 0 or NULL. Pure functions on a json_t the caller owns; any thread.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "shim.h"
#include "util.h"

/* Turn a field error of msg.c into INTERNAL about the agent's data. */
static int
guest_reply_fail(struct status *st)
{
	char first[STATUS_MSG_MAX];

	snprintf(first, sizeof first, "%s", st->msg);
	return status_set(st, ST_INTERNAL, "malformed reply from the agent: %s", first);
}

int
guest_reply_u32(json_t *resp, const char *method, const char *key, bool required, uint32_t *out,
    struct status *st)
{
	if (msg_get_u32(resp, method, key, required, out, st) < 0)
		return guest_reply_fail(st);
	return 0;
}

int
guest_reply_exit_status(json_t *resp, const char *method, int *out, struct status *st)
{
	uint32_t v;

	if (msg_get_u32(resp, method, "exit_status", true, &v, st) < 0)
		return guest_reply_fail(st);
	if (v > 0xffff)
		return status_set(st, ST_INTERNAL,
		    "malformed reply from the agent: %s.exit_status: %u is not an exit status",
		    method, v);
	*out = (int)v;
	return 0;
}

int
guest_reply_string(json_t *resp, const char *method, const char *key, bool required,
    const char **out, struct status *st)
{
	if (msg_get_string(resp, method, key, required, out, st) < 0)
		return guest_reply_fail(st);
	return 0;
}

int
guest_reply_time(
    json_t *resp, const char *method, const char *key, const char **out, struct status *st)
{
	const char *v = NULL;

	*out = NULL;
	if (msg_get_string(resp, method, key, false, &v, st) < 0)
		return guest_reply_fail(st);
	if (v != NULL && (strlen(v) < 20 || strlen(v) >= TIME_RFC3339_LEN))
		return status_set(st, ST_INTERNAL,
		    "malformed reply from the agent: %s.%s: \"%.40s\" is not an RFC 3339 time",
		    method, key, v);
	*out = v;
	return 0;
}

int
guest_reply_bool(
    json_t *resp, const char *method, const char *key, bool required, bool *out, struct status *st)
{
	if (msg_get_bool(resp, method, key, required, out, st) < 0)
		return guest_reply_fail(st);
	return 0;
}
