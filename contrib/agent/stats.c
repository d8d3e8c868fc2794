/*
 * stats.c: container statistics, from the container's cgroup or from /proc.
 *
 * With the oci runner the init process sits in the container's own cgroup (read from
 * /proc/PID/cgroup, v2 unified or v1 per controller), and the cgroup's counters cover every
 * process of the container; so does the process runner's in a real guest (guest-env.c).
 * Elsewhere the process runner shares the agent's cgroup, so it reads
 * /proc/PID of each live process instead: utime+stime -> usage_usec, VmRSS -> usage_bytes,
 * the thread count -> pids. Runs on the loop thread; these are small reads of pseudo-files
 * that never block. Owns nothing.
 *
 * The cgroup's OOM-kill counter (stats_oom_file, stats_oom_count) lets control-event.c tell the
 * shim that the kernel's OOM killer struck a container (/tasks/oom).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "stats.h"
#include "util.h"

struct stats {
	uint64_t cpu_usec;
	uint64_t mem_usage;
	uint64_t mem_limit;
	uint64_t pids;
};

/* Read the first number of a file; false when absent or not a number ("max"). */
static bool
stats_read_u64(const char *path, uint64_t *out)
{
	FILE *f = fopen(path, "re");
	bool ok;

	if (f == NULL)
		return false;
	ok = fscanf(f, "%" SCNu64, out) == 1;
	fclose(f);
	return ok;
}

/* Read "key value" from a flat-keyed file (cpu.stat). */
static bool
stats_read_key(const char *path, const char *key, uint64_t *out)
{
	char line[256], name[128];
	uint64_t v;
	bool ok = false;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return false;
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "%127s %" SCNu64, name, &v) == 2 && strcmp(name, key) == 0) {
			*out = v;
			ok = true;
			break;
		}
	}
	fclose(f);
	return ok;
}

/* The cgroup path of pid for a v1 controller, or the v2 path when controller is "". */
static bool
stats_cgroup_path(pid_t pid, const char *controller, char *out, size_t len)
{
	char path[64], line[1024];
	bool ok = false;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	while (fgets(line, sizeof line, f) != NULL) {
		char *ctl = strchr(line, ':'), *cg;
		if (ctl == NULL || (cg = strchr(ctl + 1, ':')) == NULL)
			continue;
		*cg++ = '\0';
		cg[strcspn(cg, "\n")] = '\0';
		ctl++;
		if (controller[0] == '\0' ? ctl[0] == '\0' : strstr(ctl, controller) != NULL) {
			snprintf(out, len, "%s", cg);
			ok = true;
			break;
		}
	}
	fclose(f);
	return ok && strcmp(out, "/") != 0;
}

/* Counters from the container's cgroup; false when it has none of its own. */
static bool
stats_from_cgroup(pid_t pid, struct stats *s)
{
	char cg[512], path[1024];

	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
		if (!stats_cgroup_path(pid, "", cg, sizeof cg))
			return false;
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.stat", cg);
		if (!stats_read_key(path, "usage_usec", &s->cpu_usec))
			return false;
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", cg);
		stats_read_u64(path, &s->mem_usage);
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", cg);
		stats_read_u64(path, &s->mem_limit);
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/pids.current", cg);
		stats_read_u64(path, &s->pids);
		return true;
	}
	if (!stats_cgroup_path(pid, "cpuacct", cg, sizeof cg))
		return false;
	snprintf(path, sizeof path, "/sys/fs/cgroup/cpuacct%s/cpuacct.usage", cg);
	if (!stats_read_u64(path, &s->cpu_usec))
		return false;
	s->cpu_usec /= 1000;
	if (stats_cgroup_path(pid, "memory", cg, sizeof cg)) {
		snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", cg);
		stats_read_u64(path, &s->mem_usage);
		snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", cg);
		stats_read_u64(path, &s->mem_limit);
	}
	if (stats_cgroup_path(pid, "pids", cg, sizeof cg)) {
		snprintf(path, sizeof path, "/sys/fs/cgroup/pids%s/pids.current", cg);
		stats_read_u64(path, &s->pids);
	}
	return true;
}

/* Add one process's counters from /proc/PID. */
static void
stats_add_proc(pid_t pid, struct stats *s)
{
	char path[64], buf[2048], *p;
	unsigned long utime, stime;
	uint64_t v;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces and parentheses. */
	p = strrchr(buf, ')');
	if (p != NULL &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) ==
		2 &&
	    hz > 0)
		s->cpu_usec += (uint64_t)(utime + stime) * 1000000u / (uint64_t)hz;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return;
	while (fgets(buf, sizeof buf, f) != NULL) {
		if (sscanf(buf, "VmRSS: %" SCNu64, &v) == 1)
			s->mem_usage += v * 1024;
		else if (sscanf(buf, "Threads: %" SCNu64, &v) == 1)
			s->pids += v;
	}
	fclose(f);
}

json_t *
stats_collect(struct container *c)
{
	struct stats s = {0};
	struct proc *p;

	if (!((agent.runner == &runner_oci_ops || c->cgroup != NULL) &&
		stats_from_cgroup(c->init->pid, &s))) {
		memset(&s, 0, sizeof s);
		TAILQ_FOREACH (p, &c->procs, entry) {
			if (proc_is_live(p))
				stats_add_proc(p->pid, &s);
		}
	}
	return json_pack("{s:{s:I}, s:{s:I, s:I}, s:{s:I}}", "cpu", "usage_usec",
	    (json_int_t)s.cpu_usec, "memory", "usage_bytes", (json_int_t)s.mem_usage, "limit_bytes",
	    (json_int_t)s.mem_limit, "pids", "current", (json_int_t)s.pids);
}

char *
stats_oom_file(pid_t pid)
{
	char cg[512], *file = NULL;
	uint64_t n;

	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
		if (!stats_cgroup_path(pid, "", cg, sizeof cg))
			return NULL;
		xasprintf(&file, "/sys/fs/cgroup%s/memory.events", cg);
	} else {
		if (!stats_cgroup_path(pid, "memory", cg, sizeof cg))
			return NULL;
		xasprintf(&file, "/sys/fs/cgroup/memory%s/memory.oom_control", cg);
	}
	/* Kernels before 4.13 have no oom_kill line in memory.oom_control. */
	if (!stats_read_key(file, "oom_kill", &n)) {
		free(file);
		return NULL;
	}
	return file;
}

uint64_t
stats_oom_count(const char *file)
{
	uint64_t n = 0;

	stats_read_key(file, "oom_kill", &n);
	return n;
}
