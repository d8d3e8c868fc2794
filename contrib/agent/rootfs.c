/*
 * rootfs.c: the container runtime's root filesystem mounts, in the embedded local VM only.
 *
 * containerd prepares a container's root filesystem as a list of mounts (an overlay of the
 * image's snapshots, or a bind mount) and hands it to the shim in Create's rootfs; a shim
 * that runs containers on the host mounts that list itself. In the local VM the agent is that
 * process on the host, so CreateContainer may carry the list as rootfs_mounts: they are
 * mounted in order on STATE_DIR/<id>.rootfs (outside the runner's per-container directory,
 * which is removed recursively) by mount-list.c, that directory becomes the container's
 * root, and it is unmounted (lazily, MNT_DETACH, so a process still holding it cannot keep
 * the mount busy) and removed when the container is freed. Inside a real VM the host's paths mean
 * nothing, so there rootfs_mounts is refused. Runs on the agent's loop thread; struct container
 * owns the mount point path (c->rootfs_mounted).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "mount-list.h"
#include "util.h"

void
rootfs_unmount(struct container *c)
{
	int r;

	if (c->rootfs_mounted == NULL)
		return;
	r = mount_list_undo(c->rootfs_mounted);
	if (r < 0)
		log_warn_id(c->id, NULL, "rootfs %s: %s", c->rootfs_mounted, strerror(-r));
	free(c->rootfs_mounted);
	c->rootfs_mounted = NULL;
}

int
rootfs_mount(struct container *c, json_t *mounts, struct status *st)
{
	cleanup_free char *target = NULL;

	if (json_array_size(mounts) == 0)
		return 0;
	if (!agent.local_vm)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "payload.rootfs_mounts: host mounts are only taken by the local VM");
	if (mount_list_check(mounts, "payload.rootfs_mounts", st) < 0)
		return -1;
	xasprintf(&target, "%s/%s.rootfs", agent.state_dir, c->id);
	if (mount_list_apply(mounts, target, 0, st) < 0)
		return -1;
	c->rootfs_mounted = steal_ptr(&target);
	log_info_id(c->id, NULL, "root filesystem: %zu mount(s) on %s", json_array_size(mounts),
	    c->rootfs_mounted);
	free(c->rootfs);
	c->rootfs = xstrdup(c->rootfs_mounted);
	return 0;
}
