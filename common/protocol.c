/*
 * protocol.c: the rules of protocol.h that take code (the id rule and the stdio names).
 *
 * Pure functions, no state: any thread may call them.
 */
#include "config.h"

#include <string.h>

#include "protocol.h"

const char *
stdio_kind_name(enum stdio_kind k)
{
	static const char *const names[] = {"stdin", "stdout", "stderr"};

	return k >= 0 && k < STDIO_N ? names[k] : "?";
}

int
protocol_check_id(const char *field, const char *id, bool allow_empty, struct status *st)
{
	size_t n = strlen(id);

	if (n == 0) {
		if (allow_empty)
			return 0;
		return status_set(st, ST_INVALID_ARGUMENT, "payload.%s: must not be empty", field);
	}
	if (n > PROTOCOL_ID_MAX)
		return status_set(st, ST_INVALID_ARGUMENT, "payload.%s: longer than %d bytes",
		    field, PROTOCOL_ID_MAX);
	if (id[0] == '.' || id[0] == '-')
		return status_set(
		    st, ST_INVALID_ARGUMENT, "payload.%s: must not start with '.' or '-'", field);
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			(ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
			return status_set(st, ST_INVALID_ARGUMENT,
			    "payload.%s: invalid character 0x%02x", field, (unsigned char)ch);
	}
	return 0;
}
