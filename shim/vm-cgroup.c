/*
 * vm-cgroup.c: the microVM runs in its pod's cgroup on the host.
 *
 * With runc the pod's containers sit in cgroups under the pod's cgroup parent, where the
 * kubelet sets the pod's limits and where containerd's CRI plugin reads the pod's statistics
 * (ListPodSandboxStats loads the parent's cgroup). With a microVM the containers are inside
 * the guest and the host sees only QEMU; so, as kata-containers does, the VM's processes
 * (QEMU, vmshim-vsock and the mounter) join the cgroup the sandbox's bundle names in
 * linux.cgroupsPath. The shim itself stays where containerd started it, so that it can remove
 * the cgroup once they have exited. On a cgroup v2 host that is one directory of the unified
 * hierarchy; on a cgroup v1 host it is the same path in each of the memory, cpu, cpuacct,
 * pids and blkio hierarchies that is mounted (what the CRI plugin reads the pod's
 * statistics from); cpuset is left alone (a new cpuset needs its cpus and mems set first).
 *
 * cgroupsPath comes in two forms: a path ("/kubepods/pod123/ID", the cgroupfs driver), taken
 * under /sys/fs/cgroup, or systemd's "SLICE:PREFIX:NAME", expanded as systemd does
 * ("a-b.slice" nests in "a.slice"; the unit is "PREFIX-NAME.scope"). Every component is
 * checked: no "..", no empty name, nothing but a plain relative path under the hierarchy.
 * With no cgroup hierarchy mounted the VM stays in the shim's cgroup (logged).
 *
 * vm_cgroup_join runs on the main thread before seccomp (mkdir of missing parents, the leaf,
 * cgroup.procs); the leaves' paths are kept in STATE/cgroup, one a line, so `vmshim delete`
 * can remove what a dead shim left. vm_cgroup_leave removes the leaves after the VM's
 * processes are reaped (rmdir is in the shim's seccomp profile); the parents belong to
 * whoever manages the pod.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "shim.h"
#include "util.h"

#define VM_CGROUP_ROOT	    "/sys/fs/cgroup"
#define VM_CGROUP_PATH_MAX  1024
#define VM_ROOTS_RECORD_MAX (VM_CGROUP_ROOTS_MAX * (VM_CGROUP_PATH_MAX + 64))

#define VM_CGROUP_ROOTS_MAX 5

/* The leaves we made and joined, until removed. */
static char *vm_cgroup_dirs[VM_CGROUP_ROOTS_MAX];
static size_t vm_cgroup_n;

/* The hierarchies to join: the unified one, else these v1 controllers where mounted. */
static size_t
vm_cgroup_roots(char roots[][64])
{
	static const char *const v1[] = {"memory", "cpu", "cpuacct", "pids", "blkio"};
	struct statfs sfs;
	size_t n = 0;

	if (statfs(VM_CGROUP_ROOT, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC) {
		snprintf(roots[n++], 64, "%s", VM_CGROUP_ROOT);
		return n;
	}
	for (size_t i = 0; i < ARRAY_SIZE(v1); i++) {
		snprintf(roots[n], 64, "%s/%s", VM_CGROUP_ROOT, v1[i]);
		if (statfs(roots[n], &sfs) == 0 && sfs.f_type == CGROUP_SUPER_MAGIC)
			n++;
	}
	return n;
}

/* Append "/name" to out (a path of at most VM_CGROUP_PATH_MAX). */
static int
vm_cgroup_append(char *out, const char *name, size_t len, struct status *st)
{
	size_t n = strlen(out);

	if (len == 0 || (len == 1 && name[0] == '.') || (len == 2 && strncmp(name, "..", 2) == 0))
		return status_set(st, ST_INVALID_ARGUMENT,
		    "linux.cgroupsPath: an empty, \".\" or \"..\" component");
	if (n + 1 + len >= VM_CGROUP_PATH_MAX)
		return status_set(st, ST_INVALID_ARGUMENT, "linux.cgroupsPath: too long");
	out[n] = '/';
	memcpy(out + n + 1, name, len);
	out[n + 1 + len] = '\0';
	return 0;
}

/* systemd's "SLICE:PREFIX:NAME" as a path under the hierarchy's root. */
static int
vm_cgroup_systemd(const char *spec, char *out, struct status *st)
{
	const char *c1 = strchr(spec, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
	size_t slice_len, i;
	char unit[256], comp[256];

	if (c1 == NULL || c2 == NULL || strchr(c2 + 1, ':') != NULL)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "linux.cgroupsPath \"%.*s\": expected a path or SLICE:PREFIX:NAME", LOG_STR_MAX,
		    spec);
	slice_len = (size_t)(c1 - spec);
	if (memchr(spec, '/', slice_len) != NULL)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "linux.cgroupsPath \"%.*s\": a slice name with '/'", LOG_STR_MAX, spec);
	if (slice_len == 0 || (slice_len == 1 && spec[0] == '-')) {
		/* The root slice. */
	} else {
		if (slice_len < 7 || strncmp(c1 - 6, ".slice", 6) != 0)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "linux.cgroupsPath \"%.*s\": the slice must end in .slice", LOG_STR_MAX,
			    spec);
		/* "a-b-c.slice" lives in a.slice/a-b.slice/a-b-c.slice. */
		for (i = 0; i < slice_len - 6; i++) {
			if (spec[i] != '-')
				continue;
			if (i == 0 || spec[i - 1] == '-' || i + 7 > sizeof comp)
				return status_set(st, ST_INVALID_ARGUMENT,
				    "linux.cgroupsPath \"%.*s\": a malformed slice name",
				    LOG_STR_MAX, spec);
			snprintf(comp, sizeof comp, "%.*s.slice", (int)i, spec);
			if (vm_cgroup_append(out, comp, strlen(comp), st) < 0)
				return -1;
		}
		if (vm_cgroup_append(out, spec, slice_len, st) < 0)
			return -1;
	}
	if ((size_t)snprintf(unit, sizeof unit, "%.*s%s%s.scope", (int)(c2 - c1 - 1), c1 + 1,
		c2 > c1 + 1 ? "-" : "", c2 + 1) >= sizeof unit)
		return status_set(st, ST_INVALID_ARGUMENT, "linux.cgroupsPath: too long");
	if (strchr(unit, '/') != NULL)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "linux.cgroupsPath \"%.*s\": a unit name with '/'", LOG_STR_MAX, spec);
	return vm_cgroup_append(out, unit, strlen(unit), st);
}

int
vm_cgroup_resolve(const char *spec, char *out, size_t len, struct status *st)
{
	char rel[VM_CGROUP_PATH_MAX] = "";
	const char *p, *slash;

	if (spec[0] == '/') {
		for (p = spec + 1; *p != '\0'; p = *slash ? slash + 1 : slash) {
			slash = strchrnul(p, '/');
			if (slash == p)
				continue; /* "//" or a trailing '/' */
			if (vm_cgroup_append(rel, p, (size_t)(slash - p), st) < 0)
				return -1;
		}
	} else if (vm_cgroup_systemd(spec, rel, st) < 0) {
		return -1;
	}
	if (rel[0] == '\0')
		return status_set(st, ST_INVALID_ARGUMENT, "linux.cgroupsPath: the root cgroup");
	if ((size_t)snprintf(out, len, "%s", rel) >= len)
		return status_set(st, ST_INVALID_ARGUMENT, "linux.cgroupsPath: too long");
	return 0;
}

/* Write pid to dir/cgroup.procs. */
static int
vm_cgroup_move(const char *dir, pid_t pid, struct status *st)
{
	cleanup_free char *procs = NULL;
	cleanup_close int fd = -1;
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%ld", (long)pid);

	xasprintf(&procs, "%s/cgroup.procs", dir);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		return status_errno(
		    st, ST_INTERNAL, errno, "vm.launch qemu: move pid %ld into %s", (long)pid, dir);
	return 0;
}

int
vm_cgroup_join(
    const char *spec, const char *state_dir, const pid_t *pids, size_t n, struct status *st)
{
	char rel[VM_CGROUP_PATH_MAX], roots[VM_CGROUP_ROOTS_MAX][64];
	cleanup_free char *record = NULL;
	cleanup_close int fd = -1;
	size_t nroots;

	if (spec == NULL || *spec == '\0')
		return 0;
	if (vm_cgroup_resolve(spec, rel, sizeof rel, st) < 0)
		return status_wrap(st, "vm.launch qemu");
	nroots = vm_cgroup_roots(roots);
	if (nroots == 0) {
		log_warn("microVM: no cgroup hierarchy is mounted at %s: the VM stays in the "
			 "shim's cgroup, not the pod's (%s)",
		    VM_CGROUP_ROOT, spec);
		return 0;
	}
	xasprintf(&record, "%s/cgroup", state_dir);
	fd = open(record, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return status_errno(st, ST_INTERNAL, errno, "vm.launch qemu: %s", record);
	for (size_t r = 0; r < nroots; r++) {
		cleanup_free char *dir = NULL;

		xasprintf(&dir, "%s%s", roots[r], rel);
		if (mkdir_p(dir, 0755) < 0)
			return status_errno(
			    st, ST_INTERNAL, errno, "vm.launch qemu: mkdir %s", dir);
		if (write_all(fd, dir, strlen(dir)) < 0 || write_all(fd, "\n", 1) < 0)
			return status_errno(st, ST_INTERNAL, errno, "vm.launch qemu: %s", record);
		vm_cgroup_dirs[vm_cgroup_n++] = xstrdup(dir);
		for (size_t i = 0; i < n; i++)
			if (pids[i] > 0 && vm_cgroup_move(dir, pids[i], st) < 0)
				return -1;
	}
	log_info("microVM: the VM's processes run in the pod's cgroup %s (%zu hierarch%s)", rel,
	    nroots, nroots == 1 ? "y" : "ies");
	return 0;
}

void
vm_cgroup_leave(void)
{
	for (size_t i = 0; i < vm_cgroup_n; i++) {
		if (rmdir(vm_cgroup_dirs[i]) < 0 && errno != ENOENT)
			log_warn("microVM: rmdir %s: %s", vm_cgroup_dirs[i], strerror(errno));
		free(vm_cgroup_dirs[i]);
		vm_cgroup_dirs[i] = NULL;
	}
	vm_cgroup_n = 0;
}

/* delete: remove one leaf, waiting out the processes just SIGKILLed in it. */
static void
vm_cgroup_cleanup_one(const char *dir)
{
	/* Only what vm_cgroup_join could have written: a path under the hierarchy. */
	if (strncmp(dir, VM_CGROUP_ROOT "/", sizeof VM_CGROUP_ROOT) != 0 || path_has_dotdot(dir))
		return;
	for (int nap = 1; rmdir(dir) < 0 && errno == EBUSY && nap < 1000; nap *= 2)
		poll(NULL, 0, nap);
	if (access(dir, F_OK) == 0)
		fprintf(stderr, "vmshim: delete: cannot remove %s: %s\n", dir, strerror(errno));
}

void
vm_cgroup_cleanup(const char *state_dir)
{
	cleanup_free char *record = NULL, *text = NULL;
	char *line, *save = NULL;
	size_t len;

	xasprintf(&record, "%s/cgroup", state_dir);
	if (util_read_regular_file(record, VM_ROOTS_RECORD_MAX, &text, &len) < 0 ||
	    strlen(text) != len)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		vm_cgroup_cleanup_one(line);
}
