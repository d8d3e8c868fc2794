/*
 * stats.h: container statistics for the Stats method, from the cgroup or /proc.
 */
#ifndef VMSHIM_AGENT_STATS_H
#define VMSHIM_AGENT_STATS_H

#include <jansson.h>

#include "agent.h"

/* {cpu:{usage_usec}, memory:{usage_bytes, limit_bytes}, pids:{current}}; caller decrefs. */
json_t *stats_collect(struct container *c);

#endif
