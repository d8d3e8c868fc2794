/*
 * stats.h: container statistics for the Stats method, from the cgroup or /proc.
 */
#ifndef VMSHIM_AGENT_STATS_H
#define VMSHIM_AGENT_STATS_H

#include <jansson.h>

#include "agent.h"

/* {cpu:{usage_usec}, memory:{usage_bytes, limit_bytes}, pids:{current}}; caller decrefs. */
json_t *stats_collect(struct container *c);

/*
 * The file of pid's own memory cgroup that counts OOM kills (v2 memory.events, v1
 * memory.oom_control, key oom_kill): a string for the caller to free, or NULL when pid has no
 * cgroup of its own or the kernel keeps no such count.
 */
char *stats_oom_file(pid_t pid);

/* The OOM-kill count in such a file; 0 when it cannot be read (the cgroup is gone). */
uint64_t stats_oom_count(const char *file);

#endif
