/*
 * runner.h: how the agent runs processes, behind one interface.
 *
 * Two runners: `process` (runner-process.c) forks the workload itself, on the guest's root
 * filesystem; `oci` (runner-oci.c) drives an OCI runtime such as runc. Every operation is
 * asynchronous: it returns at once and calls `done` on the loop thread when finished, either
 * from inside the call (the process runner, which never blocks) or later (runc runs as a helper
 * child reaped through the SIGCHLD path), so one slow container never blocks another. The
 * caller keeps references on the container / process across the call; `result` (may be NULL)
 * is borrowed by the callback.
 */
#ifndef VMSHIM_AGENT_RUNNER_H
#define VMSHIM_AGENT_RUNNER_H

#include <jansson.h>
#include <stdbool.h>

#include "agent.h"

typedef void (*runner_cb)(const struct status *st, json_t *result, void *arg);

struct runner_ops {
	const char *name;
	/* Prepare the init process (its pid exists afterwards); it waits for start. */
	void (*create)(struct container *c, json_t *spec, runner_cb done, void *arg);
	/* Let a prepared process run (an exec process is created here). */
	void (*start)(struct proc *p, runner_cb done, void *arg);
	/* Deliver a signal to the process (all: to every process of the container). */
	void (*signal)(struct proc *p, int sig, bool all, runner_cb done, void *arg);
	void (*pause)(struct container *c, bool pause, runner_cb done, void *arg);
	void (*update)(struct container *c, json_t *resources, runner_cb done, void *arg);
	/* result: a JSON array of pids. */
	void (*pids)(struct container *c, runner_cb done, void *arg);
	/* Tear the container down (kills what is left). */
	void (*remove)(struct container *c, runner_cb done, void *arg);
	/* Free per-process / per-container runner data (sync). */
	void (*free_proc)(struct proc *p);
	void (*free_container)(struct container *c);
};

/* Helpers shared by the runners (runner.c). */

/* Build argv / envp (NULL-terminated, malloc'd) from an OCI process object. */
int runner_strv_from_json(json_t *arr, const char *where, char ***out, struct status *st);
void runner_strv_free(char **v);
/* Call done with a status set from code/fmt. */
void runner_fail(runner_cb done, void *arg, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void runner_ok(runner_cb done, void *arg, json_t *result);

#endif
