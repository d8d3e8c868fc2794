/*
 * qmp_cmd.c: one QMP command against a QEMU monitor, for the hot-add integration tests.
 *
 *   qmp_cmd SOCKET COMMAND [ARGUMENTS_JSON]
 *
 * Connects to the monitor at SOCKET (greeting, qmp_capabilities), runs COMMAND with the given
 * arguments object, prints QEMU's "return" value as one line of compact JSON and exits 0; on a
 * QMP error or no QEMU it prints the status to stderr and exits 1. It is a thin wrapper over
 * the shim's own QMP client (shim/vm-qmp.c), single-threaded apart from that client's reader.
 * The tests use it on the VM's second monitor, which stands in for the guest (query-block,
 * qom-list, system_reset).
 */
#include "config.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "msg.h"
#include "status.h"
#include "util.h"
#include "vm.h"

int
main(int argc, char **argv)
{
	cleanup_json json_t *args = NULL, *ret = NULL;
	cleanup_free char *out = NULL;
	json_error_t jerr;
	struct status st;
	struct qmp *q;
	int r;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: qmp_cmd SOCKET COMMAND [ARGUMENTS_JSON]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	if (argc == 4) {
		args = json_loads(argv[3], 0, &jerr);
		if (!json_is_object(args)) {
			fprintf(stderr, "qmp_cmd: arguments: not a JSON object: %s\n", jerr.text);
			return 2;
		}
	}
	q = qmp_new(argv[1], 2000);
	r = qmp_execute(q, argv[2], args, 5000, &ret, &st);
	qmp_free(q);
	if (r < 0) {
		fprintf(stderr, "%s %s\n", status_code_name(st.code), st.msg);
		return 1;
	}
	out = ret != NULL ? json_dumps(ret, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
	printf("%s\n", out != NULL ? out : "{}");
	return 0;
}
