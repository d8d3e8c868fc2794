/*
 * ctl.h: vmshimctl's internal header, shared by its files, in per-file sections.
 */
#ifndef VMSHIM_CTL_H
#define VMSHIM_CTL_H

#include <jansson.h>
#include <stdbool.h>

#include "protocol.h"
#include "rpc.h"
#include "status.h"

/* Exit statuses (docs/CONTRACT.md 2). */
#define CTL_EXIT_OK    0
#define CTL_EXIT_FAIL  1
#define CTL_EXIT_USAGE 2

/* The default PATH of processes that vmshimctl builds a spec for. */
#define CTL_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* What every command gets: the connected client and the global options. */
struct ctl {
	struct rpc_client *client; /* NULL until ctl_client() connects */
	const char *address;
	bool json;	/* --json: print raw response payloads */
	int timeout_ms; /* per call; 0 waits forever */
};

/* vmshimctl.c */
/* The connected client; connects on first use, exits 1 when that fails. */
struct rpc_client *ctl_client(struct ctl *ctl);
/* Call a Task method (payload stolen, may be NULL); prints "vmshimctl: METHOD: CODE: message" on
 * error. 0 or -1. */
int ctl_task(struct ctl *ctl, const char *method, json_t *payload, int timeout_ms, json_t **resp);
/* Print a usage error and exit CTL_EXIT_USAGE. */
void ctl_usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Build an absolute path from a user's (relative to the current directory). Caller frees. */
char *ctl_abspath(const char *path);
/* Build the OCI process object for args (env PATH default, cwd /). */
json_t *ctl_process_spec(char **args, int nargs, bool terminal);

/* ctl-run.c */
/* `vmshimctl run`: argv[0] is "run". Returns the exit status of the process (or 1 / 2). */
int ctl_run(struct ctl *ctl, int argc, char **argv);

#endif
