/*
 * guest-env.c: what a container gets inside a real guest besides its root: a cgroup of its
 * own and the OCI spec's kernel filesystems.
 *
 * In a microVM the agent runs containers with the process runner (no runc in the image), which
 * by itself only forks, chroots and execs. So, before the init is forked (guest_env_setup):
 *   - the container gets the cgroup v2 directory /sys/fs/cgroup/vmshim/ID (the memory, cpu,
 *     pids and io controllers enabled on the way down), every process of the container joins
 *     it right after its fork and before it execs (guest_env_join), spec.linux.resources and
 *     later Updates are written to it (memory.max, cpu.max, cpu.weight, pids.max), and the
 *     agent's statistics and OOM events then come from it as with runc;
 *   - when the container has a root of its own (the 9p share or a block disk), the spec's
 *     mounts of kernel filesystems are made in it, in order: proc, sysfs, tmpfs, devpts and
 *     mqueue as asked, and a cgroup mount becomes a bind of the container's own cgroup
 *     directory (so /sys/fs/cgroup/memory.max in the container is its own limit). A tmpfs on
 *     /dev gets the standard device nodes (null, zero, full, random, urandom, tty) and links
 *     (fd, stdin, stdout, stderr, ptmx). Bind mounts name host paths, which do not exist in
 *     the guest: they are skipped (logged), as are types not listed.
 * The image is untrusted: each destination is walked one component at a time below the root
 * with O_NOFOLLOW (missing directories made), so no symlink in the image can send a mount out
 * of the root, and the mount goes on the walked descriptor (/proc/self/fd/N).
 * guest_env_teardown (when the container is freed) unmounts in reverse order (MNT_DETACH),
 * kills whatever is left in the cgroup (cgroup.kill) and removes it (when it is already
 * empty; a busy one stays for the next container of the id). Loop thread only: these are
 * syscalls on pseudo-filesystems and on the container's root, which in a microVM is the 9p
 * share (each a round trip to QEMU on the host, answered by QEMU itself, not by a peer that
 * could stall it).
 * struct container owns c->cgroup and c->env_mounts.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "mount-list.h"
#include "util.h"

#define GUEST_ENV_CGROUP_ROOT "/sys/fs/cgroup"
#define GUEST_ENV_CGROUP_BASE GUEST_ENV_CGROUP_ROOT "/vmshim"
#define GUEST_ENV_MOUNTS_MAX  64

/* Write a short string to dir/file. */
static int
guest_env_write(const char *dir, const char *file, const char *value)
{
	char path[PATH_MAX];
	int fd, r = 0;
	size_t n = strlen(value);

	snprintf(path, sizeof path, "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, n) != (ssize_t)n)
		r = -errno;
	close(fd);
	return r;
}

/* /sys/fs/cgroup/vmshim with the controllers the containers' cgroups use. */
static bool
guest_env_cgroup_base(void)
{
	static const char *const ctl[] = {"+memory", "+cpu", "+pids", "+io"};
	struct statfs sfs;

	if (statfs(GUEST_ENV_CGROUP_ROOT, &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC)
		return false;
	if (mkdir(GUEST_ENV_CGROUP_BASE, 0755) < 0 && errno != EEXIST)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(ctl); i++) {
		guest_env_write(GUEST_ENV_CGROUP_ROOT, "cgroup.subtree_control", ctl[i]);
		guest_env_write(GUEST_ENV_CGROUP_BASE, "cgroup.subtree_control", ctl[i]);
	}
	return true;
}

/* A member of an OCI resources object as an integer: 0 absent, -1 (st) not an integer. */
static int
guest_env_int(
    json_t *obj, const char *where, const char *key, bool *have, json_int_t *out, struct status *st)
{
	json_t *v = json_object_get(obj, key);

	*have = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return status_set(
		    st, ST_INVALID_ARGUMENT, "%s.%s: expected an integer", where, key);
	*have = true;
	*out = json_integer_value(v);
	return 0;
}

int
guest_env_update(struct container *c, json_t *resources, struct status *st)
{
	json_t *mem = json_object_get(resources, "memory"),
	       *cpu = json_object_get(resources, "cpu");
	json_t *pids = json_object_get(resources, "pids");
	json_int_t limit = 0, shares = 0, quota = 0, period = 0, plimit = 0;
	bool have_limit, have_shares, have_quota, have_period, have_plimit;
	char buf[64];
	int r = 0;

	if (c->cgroup == NULL)
		return status_set(st, ST_FAILED_PRECONDITION,
		    "container %s: no cgroup of its own in this guest", c->id);
	if (guest_env_int(mem, "resources.memory", "limit", &have_limit, &limit, st) < 0 ||
	    guest_env_int(cpu, "resources.cpu", "shares", &have_shares, &shares, st) < 0 ||
	    guest_env_int(cpu, "resources.cpu", "quota", &have_quota, &quota, st) < 0 ||
	    guest_env_int(cpu, "resources.cpu", "period", &have_period, &period, st) < 0 ||
	    guest_env_int(pids, "resources.pids", "limit", &have_plimit, &plimit, st) < 0)
		return -1;
	if (have_limit) {
		snprintf(buf, sizeof buf, limit > 0 ? "%" PRId64 : "max", (int64_t)limit);
		if ((r = guest_env_write(c->cgroup, "memory.max", buf)) < 0)
			return status_errno(st, ST_INTERNAL, r, "memory.max %s", buf);
	}
	if (have_quota || have_period) {
		if (!have_period || period <= 0)
			period = 100000;
		if (have_quota && quota > 0)
			snprintf(buf, sizeof buf, "%" PRId64 " %" PRId64, (int64_t)quota,
			    (int64_t)period);
		else
			snprintf(buf, sizeof buf, "max %" PRId64, (int64_t)period);
		if ((r = guest_env_write(c->cgroup, "cpu.max", buf)) < 0)
			return status_errno(st, ST_INTERNAL, r, "cpu.max %s", buf);
	}
	if (have_shares && shares > 0) {
		/* cgroup v1 shares 2..262144 onto v2 weight 1..10000, as runc maps them. */
		int64_t s = shares < 2 ? 2 : shares > 262144 ? 262144 : (int64_t)shares;

		snprintf(buf, sizeof buf, "%" PRId64, 1 + ((s - 2) * 9999) / 262142);
		if ((r = guest_env_write(c->cgroup, "cpu.weight", buf)) < 0)
			return status_errno(st, ST_INTERNAL, r, "cpu.weight %s", buf);
	}
	if (have_plimit) {
		snprintf(buf, sizeof buf, plimit > 0 ? "%" PRId64 : "max", (int64_t)plimit);
		if ((r = guest_env_write(c->cgroup, "pids.max", buf)) < 0)
			return status_errno(st, ST_INTERNAL, r, "pids.max %s", buf);
	}
	return 0;
}

void
guest_env_join(struct container *c, pid_t pid)
{
	char buf[32];
	int r;

	if (c->cgroup == NULL)
		return;
	snprintf(buf, sizeof buf, "%d", (int)pid);
	if ((r = guest_env_write(c->cgroup, "cgroup.procs", buf)) < 0)
		log_warn_id(c->id, NULL, "pid %d into %s: %s", (int)pid, c->cgroup, strerror(-r));
}

/*
 * Open dest (absolute, inside the root open as rootfd) as an O_PATH directory, making
 * missing components; -1 (st) on "..", a symlink or a non-directory on the way.
 */
static int
guest_env_walk(int rootfd, const char *dest, struct status *st)
{
	char comp[NAME_MAX + 1];
	const char *p = dest, *slash;
	int fd = dup(rootfd), next;

	if (fd < 0)
		return status_errno(st, ST_INTERNAL, errno, "dup");
	while (*p != '\0') {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		slash = strchrnul(p, '/');
		if ((size_t)(slash - p) > NAME_MAX ||
		    (slash - p == 2 && strncmp(p, "..", 2) == 0)) {
			close(fd);
			return status_set(st, ST_INVALID_ARGUMENT, "mount destination %s", dest);
		}
		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = '\0';
		p = slash;
		if (strcmp(comp, ".") == 0)
			continue;
		if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
			int err = errno;

			close(fd);
			return status_errno(st, ST_INTERNAL, err, "mkdir %s in the root", dest);
		}
		next = openat(fd, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return status_errno(st, ST_INVALID_ARGUMENT, errno,
			    "mount destination %s in the root", dest);
		fd = next;
	}
	return fd;
}

/* The device nodes and links of a fresh /dev (at path). */
static void
guest_env_devices(struct container *c, const char *path)
{
	static const struct {
		const char *name;
		unsigned major, minor;
	} devs[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8},
	    {"urandom", 1, 9}, {"tty", 5, 0}};
	static const char *const links[][2] = {{"/proc/self/fd", "fd"},
	    {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
	    {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}};
	int fd = open(path, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++) {
		if (mknodat(fd, devs[i].name, S_IFCHR | 0666,
			makedev(devs[i].major, devs[i].minor)) < 0 ||
		    fchmodat(fd, devs[i].name, 0666, 0) < 0)
			log_warn_id(c->id, NULL, "/dev/%s: %s", devs[i].name, strerror(errno));
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		if (symlinkat(links[i][0], fd, links[i][1]) < 0 && errno != EEXIST)
			log_warn_id(c->id, NULL, "/dev/%s: %s", links[i][1], strerror(errno));
	close(fd);
}

/* One spec mount in the root. */
static int
guest_env_mount(struct container *c, int rootfd, json_t *m, size_t i, struct status *st)
{
	static const char *const kernel_types[] = {"proc", "sysfs", "tmpfs", "devpts", "mqueue"};
	const char *dest = NULL, *type = "", *source = "";
	char where[48], data[MOUNT_LIST_DATA_MAX], target[64], *path;
	unsigned long flags;
	json_t *opts = NULL;
	bool kernel = false, cgroup;
	int fd, r, err;

	snprintf(where, sizeof where, "spec.mounts[%zu]", i);
	if (msg_get_string(m, where, "destination", true, &dest, st) < 0 ||
	    msg_get_string(m, where, "type", false, &type, st) < 0 ||
	    msg_get_string(m, where, "source", false, &source, st) < 0 ||
	    msg_get_array(m, where, "options", false, &opts, st) < 0 ||
	    mount_list_options(opts, where, &flags, data, st) < 0)
		return -1;
	if (dest[0] != '/')
		return status_set(
		    st, ST_INVALID_ARGUMENT, "%s.destination: must be an absolute path", where);
	for (size_t k = 0; k < ARRAY_SIZE(kernel_types); k++)
		kernel = kernel || strcmp(type, kernel_types[k]) == 0;
	cgroup = strcmp(type, "cgroup") == 0 || strcmp(type, "cgroup2") == 0;
	if (!kernel && !(cgroup && c->cgroup != NULL)) {
		log_info_id(c->id, NULL, "%s (%s on %s): not made in a guest", where,
		    *type ? type : "bind", dest);
		return 0;
	}
	if ((fd = guest_env_walk(rootfd, dest, st)) < 0)
		return -1;
	snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
	if (cgroup)
		r = mount(c->cgroup, target, NULL, MS_BIND, NULL);
	else
		r = mount(*source ? source : type, target, type, flags, data[0] ? data : NULL);
	err = errno;
	close(fd);
	if (r < 0)
		return status_errno(st, ST_INTERNAL, err, "%s: mount %s on %s", where, type, dest);
	/*
	 * The descriptor names the directory beneath the new mount; what follows goes by path,
	 * which the walk just checked (nothing of the container runs yet to change it).
	 */
	xasprintf(&path, "%s%s", c->rootfs, dest);
	c->env_mounts = xrealloc(c->env_mounts, (c->n_env_mounts + 1) * sizeof *c->env_mounts);
	c->env_mounts[c->n_env_mounts++] = path;
	if (cgroup && (flags & MS_RDONLY) &&
	    mount(NULL, path, NULL,
		MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return status_errno(st, ST_INTERNAL, errno, "%s: read-only %s", where, dest);
	if (strcmp(type, "tmpfs") == 0 && strcmp(dest, "/dev") == 0)
		guest_env_devices(c, path);
	return 0;
}

int
guest_env_setup(struct container *c, json_t *spec, struct status *st)
{
	json_t *linux_ = json_object_get(spec, "linux"), *res, *mounts, *m;
	cleanup_close int rootfd = -1;
	size_t i;

	if (guest_env_cgroup_base()) {
		xasprintf(&c->cgroup, "%s/%s", GUEST_ENV_CGROUP_BASE, c->id);
		/* A cgroup a previous container of this id left (its teardown failed): reuse. */
		if (mkdir(c->cgroup, 0755) < 0 && errno != EEXIST) {
			status_errno(st, ST_INTERNAL, errno, "mkdir %s", c->cgroup);
			goto fail;
		}
		res = json_object_get(linux_, "resources");
		if (json_is_object(res) && guest_env_update(c, res, st) < 0) {
			status_wrap(st, "spec.linux.resources");
			goto fail;
		}
	}
	mounts = json_object_get(spec, "mounts");
	if (c->rootfs[0] == '\0' || mounts == NULL)
		return 0;
	if (!json_is_array(mounts) || json_array_size(mounts) > GUEST_ENV_MOUNTS_MAX) {
		status_set(st, ST_INVALID_ARGUMENT, "spec.mounts: expected an array of at most %d",
		    GUEST_ENV_MOUNTS_MAX);
		goto fail;
	}
	rootfd = open(c->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		status_errno(st, ST_INTERNAL, errno, "the container's root %s", c->rootfs);
		goto fail;
	}
	json_array_foreach (mounts, i, m) {
		if (guest_env_mount(c, rootfd, m, i, st) < 0)
			goto fail;
	}
	return 0;
fail:
	guest_env_teardown(c);
	return -1;
}

void
guest_env_teardown(struct container *c)
{
	while (c->n_env_mounts > 0) {
		char *path = c->env_mounts[--c->n_env_mounts];

		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			log_warn_id(c->id, NULL, "unmount %s: %s", path, strerror(errno));
		free(path);
	}
	free(c->env_mounts);
	c->env_mounts = NULL;
	if (c->cgroup == NULL)
		return;
	/*
	 * The runner has killed and reaped the container's processes; cgroup.kill ends any
	 * orphan they left. It acts asynchronously, so a cgroup still busy is left for the next
	 * container of this id to reuse, rather than waited for on the loop thread.
	 */
	guest_env_write(c->cgroup, "cgroup.kill", "1");
	if (rmdir(c->cgroup) < 0)
		log_info_id(c->id, NULL, "rmdir %s: %s (left)", c->cgroup, strerror(errno));
	free(c->cgroup);
	c->cgroup = NULL;
}
