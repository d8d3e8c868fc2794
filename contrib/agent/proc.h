/*
 * proc.h: the internal header of the process table, shared by proc*.c only.
 *
 * proc.c owns the table (containers, processes and their stdio ends); proc-stdio.c the
 * streams' side of a process (attach, drain, pty, stdin); proc-reap.c reaping and pid claims;
 * proc-helper.c helper children. Everything runs on the loop thread.
 */
#ifndef VMSHIM_AGENT_PROC_H
#define VMSHIM_AGENT_PROC_H

#include <stdbool.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "agent.h"

/* ---- proc.c ---- */

TAILQ_HEAD(proc_container_list, container);

/* Every container not yet removed (proc.c inserts and removes). */
extern struct proc_container_list proc_containers;
/* The observer (control.c's) and the stream operations (stream.c's), set before the loop runs. */
extern const struct proc_observer *proc_obs;
extern const struct proc_stream_ops *proc_streams;

/* The live process with this pid, if any. */
struct proc *proc_find_pid(pid_t pid);
/* Close *fd if open and mark it -1. */
void proc_close_fd(int *fd);

/* ---- proc-stdio.c ---- */

/* Publish the exit once the status is in and every output stream is done. */
void proc_check_done(struct proc *p);

/* ---- proc-helper.c ---- */

/* A reaped pid: true when it was a helper's (its callback may have run). */
bool proc_helper_reaped(pid_t pid, int wstatus);
/* Shutdown: forget every helper without calling back. */
void proc_helper_free_all(void);

#endif
