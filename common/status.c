/*
 * status.c: gRPC status codes and the error struct that carries them up the stack.
 *
 * No allocation: the message is formatted into the struct itself, so reporting an error can
 * never fail. Thread-safe; a struct status belongs to whoever declared it.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "status.h"
#include "util.h"

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *
status_code_name(int code)
{
	if (code < 0 || (size_t)code >= ARRAY_SIZE(status_names))
		return "UNKNOWN_CODE";
	return status_names[code];
}

int
status_code_parse(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(status_names); i++)
		if (strcmp(status_names[i], name) == 0)
			return (int)i;
	return -1;
}

void
status_clear(struct status *st)
{
	st->code = ST_OK;
	st->msg[0] = '\0';
}

int
status_set(struct status *st, int code, const char *fmt, ...)
{
	va_list ap;

	st->code = code;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof st->msg, fmt, ap);
	va_end(ap);
	return -1;
}

int
status_errno(struct status *st, int code, int err, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	st->code = code;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof st->msg, fmt, ap);
	va_end(ap);
	n = strlen(st->msg);
	snprintf(st->msg + n, sizeof st->msg - n, ": %s", strerror(err < 0 ? -err : err));
	return -1;
}

int
status_wrap(struct status *st, const char *fmt, ...)
{
	char prefix[STATUS_MSG_MAX];
	char old[STATUS_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, st->msg, sizeof old);
	snprintf(st->msg, sizeof st->msg, "%s: %s", prefix, old);
	return -1;
}
