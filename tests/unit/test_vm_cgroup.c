/*
 * test_vm_cgroup.c: the microVM's processes in the pod's cgroup (shim/vm-cgroup.c).
 *
 * linux.cgroupsPath in both of its forms is turned into a path under a hierarchy's root, and
 * everything that could leave the hierarchy or name its root is refused. As root, a child
 * joins a cgroup of a unique name on this host's hierarchies (v2, or the v1 controllers),
 * /proc/PID/cgroup shows it there, STATE/cgroup records each leaf, and leaving after the child
 * is reaped removes them; `delete`'s cleanup removes what a record names.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"
#include "unit.h"
#include "util.h"

static void
resolves(const char *spec, const char *want)
{
	char out[2048];
	struct status st;
	int r = vm_cgroup_resolve(spec, out, sizeof out, &st);

	if (r < 0 || strcmp(out, want) != 0)
		fprintf(stderr, "%s -> %s (%s), want %s\n", spec, r < 0 ? "error" : out,
		    r < 0 ? st.msg : "", want);
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_STRING_EQUAL(r == 0 ? out : "", want);
}

static void
refused(const char *spec)
{
	char out[2048];
	struct status st;

	CU_ASSERT_EQUAL(vm_cgroup_resolve(spec, out, sizeof out, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
}

static void
test_resolve(void)
{
	char long_spec[1500];

	resolves("/kubepods/pod1/abc", "/kubepods/pod1/abc");
	resolves("/a//b/", "/a/b");
	resolves("system.slice:cri-containerd:abc", "/system.slice/cri-containerd-abc.scope");
	resolves("kubepods-burstable-pod12.slice:cri-containerd:abc",
	    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/"
	    "cri-containerd-abc.scope");
	resolves(":cri:abc", "/cri-abc.scope");
	refused("/");
	refused("/a/../b");
	refused("/a/./b");
	refused("..:x:y");
	refused("kubepods.slice:a");
	refused("kubepods.slice:a:b:c");
	refused("kube--pods.slice:a:b");
	refused("-kube.slice:a:b");
	refused("kubepods:a:b");
	refused("s.slice:a:b/../../x");
	refused("a-b/../../x.slice:p:n");
	memset(long_spec, 'a', sizeof long_spec);
	long_spec[0] = '/';
	long_spec[sizeof long_spec - 1] = '\0';
	refused(long_spec);
}

/* The line of /proc/pid/cgroup for the hierarchy whose controllers hold ctl ("" for v2). */
static bool
in_cgroup(pid_t pid, const char *rel)
{
	char path[64], line[1024];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof line, f) != NULL) {
		char *cg = strchr(strchr(line, ':') + 1, ':') + 1;

		cg[strcspn(cg, "\n")] = '\0';
		found = strcmp(cg, rel) == 0;
	}
	fclose(f);
	return found;
}

static void
test_join_leave(void)
{
	char state[] = "/tmp/test_vm_cgroup.XXXXXX", rel[64], record[128], line[1200];
	struct status st;
	pid_t child;
	FILE *f;
	int n = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(state));
	snprintf(rel, sizeof rel, "/vmshim-unit-%d/sandbox", (int)getpid());
	/* Nothing asked, nothing done. */
	CU_ASSERT_EQUAL(vm_cgroup_join(NULL, state, NULL, 0, &st), 0);
	CU_ASSERT_EQUAL(vm_cgroup_join("", state, NULL, 0, &st), 0);
	snprintf(record, sizeof record, "%s/cgroup", state);
	CU_ASSERT_EQUAL(access(record, F_OK), -1);

	child = fork();
	CU_ASSERT_FATAL(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	CU_ASSERT_EQUAL(vm_cgroup_join(rel, state, &child, 1, &st), 0);
	CU_ASSERT(in_cgroup(child, rel));
	f = fopen(record, "re");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		CU_ASSERT_EQUAL(access(line, F_OK), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(line, rel));
		n++;
	}
	fclose(f);
	CU_ASSERT(n >= 1);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	vm_cgroup_leave();
	f = fopen(record, "re");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof line, f) != NULL) {
		char parent[1200];

		line[strcspn(line, "\n")] = '\0';
		CU_ASSERT_EQUAL(access(line, F_OK), -1);
		/* The parent is the pod manager's; the test removes its own. */
		snprintf(parent, sizeof parent, "%s", line);
		*strrchr(parent, '/') = '\0';
		rmdir(parent);
	}
	fclose(f);

	/* delete's cleanup: a record naming leaves removes them (and nothing outside). */
	CU_ASSERT_EQUAL(vm_cgroup_join(rel, state, NULL, 0, &st), 0);
	vm_cgroup_cleanup(state);
	f = fopen(record, "re");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		CU_ASSERT_EQUAL(access(line, F_OK), -1);
		*strrchr(line, '/') = '\0';
		rmdir(line);
	}
	fclose(f);
	vm_cgroup_leave(); /* already gone: nothing to do */
	unlink(record);
	CU_ASSERT_EQUAL(rmdir(state), 0);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"cgroupsPath forms, and what is refused", test_resolve},
	    {"join, leave and delete's cleanup", test_join_leave},
	    {NULL, NULL},
	};

	log_set_level(LOG_ERROR);
	if (geteuid() != 0 || access("/sys/fs/cgroup", W_OK) != 0)
		unit_skip("joining a cgroup needs root and a writable /sys/fs/cgroup");
	return unit_main("vm_cgroup", cases);
}
