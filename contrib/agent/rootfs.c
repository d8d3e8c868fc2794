/*
 * rootfs.c: the container runtime's root filesystem mounts, in the embedded local VM only.
 *
 * containerd prepares a container's root filesystem as a list of mounts (an overlay of the
 * image's snapshots, or a bind mount) and hands it to the shim in Create's rootfs; a shim
 * that runs containers on the host mounts that list itself. In the local VM the agent is that
 * process on the host, so CreateContainer may carry the list as rootfs_mounts: they are
 * mounted in order on STATE_DIR/<id>.rootfs (outside the runner's per-container directory,
 * which is removed recursively), that directory becomes the container's root, and it is
 * unmounted (lazily, MNT_DETACH, so a process still holding it cannot keep the mount busy)
 * and removed when the container is freed. Inside a real VM the host's paths mean nothing,
 * so there rootfs_mounts is refused. Runs on the agent's loop thread; struct container owns
 * the mount point path (c->rootfs_mounted).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "util.h"

#define ROOTFS_MOUNTS_MAX 16
#define ROOTFS_DATA_MAX	  8192

/* mount(8) words that are flags, not filesystem data. */
static const struct {
	const char *word;
	unsigned long set, clear;
} rootfs_flags[] = {
    {"ro", MS_RDONLY, 0},
    {"rw", 0, MS_RDONLY},
    {"bind", MS_BIND, 0},
    {"rbind", MS_BIND | MS_REC, 0},
    {"nosuid", MS_NOSUID, 0},
    {"suid", 0, MS_NOSUID},
    {"nodev", MS_NODEV, 0},
    {"dev", 0, MS_NODEV},
    {"noexec", MS_NOEXEC, 0},
    {"exec", 0, MS_NOEXEC},
    {"noatime", MS_NOATIME, 0},
    {"relatime", MS_RELATIME, 0},
    {"sync", MS_SYNCHRONOUS, 0},
    {"async", 0, MS_SYNCHRONOUS},
    {"defaults", 0, 0},
};

/* Split a mount's options into flags and the data string. */
static int
rootfs_options(json_t *opts, const char *where, unsigned long *flags, char *data, struct status *st)
{
	size_t i, n = 0, k;
	json_t *o;

	*flags = 0;
	data[0] = '\0';
	json_array_foreach (opts, i, o) {
		const char *w = json_string_value(o);
		bool found = false;

		if (w == NULL)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s.options[%zu]: expected a string", where, i);
		for (k = 0; k < ARRAY_SIZE(rootfs_flags); k++) {
			if (strcmp(w, rootfs_flags[k].word) == 0) {
				*flags = (*flags | rootfs_flags[k].set) & ~rootfs_flags[k].clear;
				found = true;
				break;
			}
		}
		if (found)
			continue;
		if (n + strlen(w) + 2 > ROOTFS_DATA_MAX)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s.options: longer than %d bytes", where, ROOTFS_DATA_MAX);
		n += (size_t)snprintf(data + n, ROOTFS_DATA_MAX - n, "%s%s", n ? "," : "", w);
	}
	return 0;
}

void
rootfs_unmount(struct container *c)
{
	if (c->rootfs_mounted == NULL)
		return;
	while (umount2(c->rootfs_mounted, MNT_DETACH) == 0)
		; /* every mount stacked on it */
	if (rmdir(c->rootfs_mounted) < 0 && errno != ENOENT)
		log_warn_id(c->id, NULL, "rootfs %s: %s", c->rootfs_mounted, strerror(errno));
	free(c->rootfs_mounted);
	c->rootfs_mounted = NULL;
}

int
rootfs_mount(struct container *c, json_t *mounts, struct status *st)
{
	cleanup_free char *target = NULL;
	char data[ROOTFS_DATA_MAX];
	unsigned long flags;
	size_t i;
	json_t *m;

	if (json_array_size(mounts) == 0)
		return 0;
	if (!agent.local_vm)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "payload.rootfs_mounts: host mounts are only taken by the local VM");
	if (json_array_size(mounts) > ROOTFS_MOUNTS_MAX)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "payload.rootfs_mounts: more than %d mounts", ROOTFS_MOUNTS_MAX);
	json_array_foreach (mounts, i, m) {
		char where[48];
		const char *type = NULL, *source = NULL;
		json_t *opts = NULL;

		snprintf(where, sizeof where, "payload.rootfs_mounts[%zu]", i);
		if (msg_get_string(m, where, "type", true, &type, st) < 0 ||
		    msg_get_string(m, where, "source", true, &source, st) < 0 ||
		    msg_get_array(m, where, "options", false, &opts, st) < 0 ||
		    rootfs_options(opts, where, &flags, data, st) < 0)
			return -1;
	}
	xasprintf(&target, "%s/%s.rootfs", agent.state_dir, c->id);
	if (mkdir_p(target, 0700) < 0)
		return status_errno(st, ST_INTERNAL, errno, "mkdir %s", target);
	c->rootfs_mounted = steal_ptr(&target);
	json_array_foreach (mounts, i, m) {
		const char *type = json_string_value(json_object_get(m, "type"));
		const char *source = json_string_value(json_object_get(m, "source"));

		rootfs_options(json_object_get(m, "options"), "", &flags, data, st);
		if (strcmp(type, "bind") == 0 || strcmp(type, "rbind") == 0)
			flags |= MS_BIND;
		/* A read-only bind takes effect only on a remount. */
		if (mount(source, c->rootfs_mounted, type, flags & ~MS_RDONLY,
			data[0] ? data : NULL) < 0 ||
		    ((flags & (MS_BIND | MS_RDONLY)) == (MS_BIND | MS_RDONLY) &&
			mount(NULL, c->rootfs_mounted, NULL, flags | MS_REMOUNT, NULL) < 0)) {
			int err = errno;

			rootfs_unmount(c);
			return status_errno(st, ST_INTERNAL, err,
			    "mount rootfs_mounts[%zu] (%s %s) for %s", i, type, source, c->id);
		}
	}
	log_info_id(c->id, NULL, "root filesystem: %zu mount(s) on %s", json_array_size(mounts),
	    c->rootfs_mounted);
	free(c->rootfs);
	c->rootfs = xstrdup(c->rootfs_mounted);
	return 0;
}
