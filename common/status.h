/*
 * status.h: errors that a peer, the guest or the system can cause.
 *
 * A struct status carries a gRPC status code and a message; functions that can fail take a
 * `struct status *` and return -1 after filling it, so context is added on the way up with
 * status_wrap() (crun's crun_make_error / crun_error_wrap). Only a request handler turns it
 * into a response and only main() prints it. The message lives inside the struct, so setting
 * a status never allocates and never fails.
 */
#ifndef VMSHIM_STATUS_H
#define VMSHIM_STATUS_H

enum status_code {
	ST_OK = 0,
	ST_CANCELLED = 1,
	ST_UNKNOWN = 2,
	ST_INVALID_ARGUMENT = 3,
	ST_DEADLINE_EXCEEDED = 4,
	ST_NOT_FOUND = 5,
	ST_ALREADY_EXISTS = 6,
	ST_PERMISSION_DENIED = 7,
	ST_RESOURCE_EXHAUSTED = 8,
	ST_FAILED_PRECONDITION = 9,
	ST_ABORTED = 10,
	ST_OUT_OF_RANGE = 11,
	ST_UNIMPLEMENTED = 12,
	ST_INTERNAL = 13,
	ST_UNAVAILABLE = 14,
	ST_DATA_LOSS = 15,
	ST_UNAUTHENTICATED = 16,
};

#define STATUS_MSG_MAX 512

struct status {
	int code;
	char msg[STATUS_MSG_MAX];
};

/* "OK", "INVALID_ARGUMENT", ...; "UNKNOWN_CODE" for codes outside 0..16. */
const char *status_code_name(int code);
/* Parse a name as status_code_name() prints it; -1 if unknown. */
int status_code_parse(const char *name);

void status_clear(struct status *st);
/* Set code and message (truncated to fit). Always returns -1, so `return status_set(...)`. */
int status_set(struct status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like status_set, appending ": strerror(err)" (err positive or negative errno). Returns -1. */
int status_errno(struct status *st, int code, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefix "context: " to the message, keeping the code. Returns -1. */
int status_wrap(struct status *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
