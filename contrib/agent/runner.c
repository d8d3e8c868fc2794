/*
 * runner.c: helpers shared by the runners (runner-process.c, runner-oci.c): string vectors
 * from JSON arrays, and answering a runner callback. Runs on the loop thread; a vector
 * belongs to the caller, who frees it with runner_strv_free.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "runner.h"
#include "util.h"

/* Copy a JSON array of strings into a NULL-terminated vector; -1 names the bad element. */
int
runner_strv_from_json(json_t *arr, const char *where, char ***out, struct status *st)
{
	size_t i, n = json_array_size(arr);
	char **v;

	v = xcalloc(n + 1, sizeof *v);
	for (i = 0; i < n; i++) {
		json_t *s = json_array_get(arr, i);
		if (!json_is_string(s)) {
			runner_strv_free(v);
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s[%zu]: expected string", where, i);
		}
		v[i] = xstrdup(json_string_value(s));
	}
	*out = v;
	return 0;
}

/* Free a vector from runner_strv_from_json (NULL is fine). */
void
runner_strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* Answer done with a status built from code and the message. */
void
runner_fail(runner_cb done, void *arg, int code, const char *fmt, ...)
{
	struct status st;
	va_list ap;

	st.code = code;
	va_start(ap, fmt);
	vsnprintf(st.msg, sizeof st.msg, fmt, ap);
	va_end(ap);
	done(&st, NULL, arg);
}

/* Answer done with success and result (borrowed, may be NULL). */
void
runner_ok(runner_cb done, void *arg, json_t *result)
{
	struct status st;

	status_clear(&st);
	done(&st, result, arg);
}
