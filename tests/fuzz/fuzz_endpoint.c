/*
 * fuzz_endpoint.c: libFuzzer target for endpoint strings (common/transport.c,
 * endpoint_parse), which come from the configuration (vm.vsock) and the command line.
 *
 * The input, NUL-terminated (an embedded NUL ends the string, as it would in C), is parsed.
 * A failure must be INVALID_ARGUMENT with a message; a success must hold a NUL-terminated
 * path for unix: and uds:, and must survive endpoint_format and a second parse unchanged.
 * The copy of the input is the only allocation and is freed before returning.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "transport.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1), text[256];
	struct endpoint ep, again;
	struct status st;

	memcpy(s, data, size);
	s[size] = '\0';
	status_clear(&st);
	if (endpoint_parse(s, &ep, &st) < 0) {
		fuzz_check(st.code == ST_INVALID_ARGUMENT && st.msg[0] != '\0', "code %d \"%s\"",
		    st.code, st.msg);
		free(s);
		return 0;
	}
	fuzz_check(
	    ep.kind == ENDPOINT_UNIX || ep.kind == ENDPOINT_VSOCK || ep.kind == ENDPOINT_HYBRID,
	    "kind %d", (int)ep.kind);
	fuzz_check(memchr(ep.path, '\0', sizeof ep.path) != NULL, "path not terminated");
	if (ep.kind != ENDPOINT_VSOCK)
		fuzz_check(ep.path[0] != '\0', "empty path accepted");
	endpoint_format(&ep, text, sizeof text);
	fuzz_check(strlen(text) < sizeof text - 1, "formatted endpoint truncated");
	fuzz_check(
	    endpoint_parse(text, &again, &st) == 0, "\"%s\" does not parse back: %s", text, st.msg);
	fuzz_check(again.kind == ep.kind && again.cid == ep.cid && again.port == ep.port &&
		       strcmp(again.path, ep.path) == 0,
	    "\"%s\" parses back differently", text);
	free(s);
	return 0;
}
