/*
 * shim_load.c: parallel load on vmshim's control socket for the integration tests.
 *
 *   shim_load SOCK CLIENTS CALLS [ID]
 *
 * CLIENTS threads each open their own connection (an rpc_client with its reader thread) and
 * make CALLS calls one after another: State on ID when given (it must exist), else Connect.
 * Every call must succeed. Prints the total and the throughput; exits 0 on success.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "rpc.h"
#include "transport.h"
#include "util.h"

static const char *sock_path, *task_id;
static int ncalls;
static atomic_int failures;

static void *
load_client(void *arg)
{
	struct endpoint ep = {.kind = ENDPOINT_UNIX};
	struct rpc_client *c;
	struct status st;
	json_t *req;
	int fd;

	snprintf(ep.path, sizeof ep.path, "%s", sock_path);
	fd = transport_connect(&ep, 5000, &st);
	if (fd < 0) {
		fprintf(stderr, "connect: %s\n", st.msg);
		atomic_fetch_add(&failures, ncalls);
		return NULL;
	}
	c = rpc_client_new(fd, 4u << 20);
	if (rpc_client_start_reader(c, &st) < 0)
		fatalx("reader: %s", st.msg);
	req = task_id ? json_pack("{s:s}", "id", task_id) : json_pack("{s:s}", "id", "x");
	for (int i = 0; i < ncalls; i++) {
		if (rpc_client_call(c, PROTOCOL_TASK_SERVICE, task_id ? "State" : "Connect", req,
			10000, NULL, &st) < 0) {
			if (atomic_fetch_add(&failures, 1) < 5)
				fprintf(stderr, "call %d: %s: %s\n", i, status_code_name(st.code),
				    st.msg);
		}
	}
	json_decref(req);
	rpc_client_free(c);
	return NULL;
}

int
main(int argc, char **argv)
{
	pthread_t *t;
	int n;
	int64_t t0, ms;

	if (argc < 4) {
		fprintf(stderr, "usage: shim_load SOCK CLIENTS CALLS [ID]\n");
		return 2;
	}
	sock_path = argv[1];
	n = atoi(argv[2]);
	ncalls = atoi(argv[3]);
	task_id = argc > 4 ? argv[4] : NULL;
	t = xcalloc((size_t)n, sizeof *t);
	t0 = time_mono_ms();
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, load_client, NULL) != 0)
			fatalx("pthread_create");
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	ms = time_mono_ms() - t0;
	printf("%s: %d clients x %d calls: %d failed, %lld ms (%.0f calls/s)\n",
	    failures ? "FAIL" : "PASS", n, ncalls, (int)failures, (long long)ms,
	    (double)n * ncalls * 1000.0 / (double)(ms ? ms : 1));
	free(t);
	return failures ? 1 : 0;
}
