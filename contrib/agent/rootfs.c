/*
 * rootfs.c: a container's root filesystem given as mounts (CreateContainer's rootfs_mounts).
 *
 * containerd hands a shim the container's root filesystem as a list of mounts (its snapshotter's
 * overlay or bind mount), which the shim mounts on the bundle's rootfs directory before the
 * runtime starts the container, and unmounts when the container is deleted. In the embedded
 * local VM the agent runs on the host and the shim is confined by seccomp (no mount), so the
 * shim passes the list on and the agent does the mounting for the OCI runner: a guest of a
 * real VM never gets such a list, since the host's paths mean nothing there.
 *
 * rootfs_check() validates the list on the loop thread when CreateContainer arrives (every
 * field comes from the shim, a peer). rootfs_mount_all() runs in a helper child (mount may
 * block on the filesystem; the loop thread never does), and writes its error to stderr, which
 * the helper's caller reads. rootfs_unmount() detaches whatever is mounted on the target
 * (MNT_DETACH: no waiting for users), once the container is gone. Nothing is kept here.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

#include "agent.h"
#include "log.h"
#include "msg.h"
#include "util.h"

/* mount(2) flags by option word; anything else goes to the filesystem as data. */
static const struct {
	const char *name;
	unsigned long flag;
	bool clear;
} rootfs_flags[] = {{"ro", MS_RDONLY, false}, {"rw", MS_RDONLY, true}, {"nosuid", MS_NOSUID, false},
    {"suid", MS_NOSUID, true}, {"nodev", MS_NODEV, false}, {"dev", MS_NODEV, true},
    {"noexec", MS_NOEXEC, false}, {"exec", MS_NOEXEC, true}, {"sync", MS_SYNCHRONOUS, false},
    {"async", MS_SYNCHRONOUS, true}, {"noatime", MS_NOATIME, false}, {"atime", MS_NOATIME, true},
    {"nodiratime", MS_NODIRATIME, false}, {"relatime", MS_RELATIME, false},
    {"strictatime", MS_STRICTATIME, false}, {"bind", MS_BIND, false},
    {"rbind", MS_BIND | MS_REC, false}};

/* The longest data string mount(2) takes (one page). */
#define ROOTFS_DATA_MAX 4095

int
rootfs_check(json_t *mounts, struct status *st)
{
	const char *type, *source, *o;
	json_t *m, *opts, *v;
	size_t i, j;
	char where[64];

	if (mounts == NULL)
		return 0;
	json_array_foreach (mounts, i, m) {
		snprintf(where, sizeof where, "payload.rootfs_mounts[%zu]", i);
		if (!json_is_object(m))
			return status_set(st, ST_INVALID_ARGUMENT, "%s: expected an object", where);
		opts = NULL;
		if (msg_get_string(m, where, "type", true, &type, st) < 0 ||
		    msg_get_string(m, where, "source", true, &source, st) < 0 ||
		    msg_get_array(m, where, "options", false, &opts, st) < 0)
			return -1;
		if (type[0] == '\0' || source[0] == '\0')
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s: type and source must not be empty", where);
		json_array_foreach (opts, j, v) {
			if (!json_is_string(v))
				return status_set(st, ST_INVALID_ARGUMENT,
				    "%s.options[%zu]: expected a string", where, j);
			o = json_string_value(v);
			if (strlen(o) > ROOTFS_DATA_MAX)
				return status_set(st, ST_INVALID_ARGUMENT,
				    "%s.options[%zu]: longer than %d bytes", where, j,
				    ROOTFS_DATA_MAX);
		}
	}
	return 0;
}

/* Split option words into mount flags and the data string (data holds ROOTFS_DATA_MAX + 1). */
static int
rootfs_options(json_t *opts, unsigned long *flags, char *data)
{
	size_t i, k, len = 0, n;
	const char *o;
	json_t *v;

	*flags = 0;
	data[0] = '\0';
	json_array_foreach (opts, i, v) {
		o = json_string_value(v);
		for (k = 0; k < ARRAY_SIZE(rootfs_flags); k++) {
			if (strcmp(o, rootfs_flags[k].name) == 0)
				break;
		}
		if (k < ARRAY_SIZE(rootfs_flags)) {
			if (rootfs_flags[k].clear)
				*flags &= ~rootfs_flags[k].flag;
			else
				*flags |= rootfs_flags[k].flag;
			continue;
		}
		n = strlen(o);
		if (len + n + 1 > ROOTFS_DATA_MAX) {
			dprintf(2, "mount options longer than %d bytes", ROOTFS_DATA_MAX);
			return -1;
		}
		if (len > 0)
			data[len++] = ',';
		memcpy(data + len, o, n + 1);
		len += n;
	}
	return 0;
}

int
rootfs_mount_all(json_t *mounts, const char *target)
{
	char data[ROOTFS_DATA_MAX + 1];
	const char *type, *source;
	unsigned long flags;
	size_t i, done = 0;
	json_t *m;

	json_array_foreach (mounts, i, m) {
		type = json_string_value(json_object_get(m, "type"));
		source = json_string_value(json_object_get(m, "source"));
		if (rootfs_options(json_object_get(m, "options"), &flags, data) < 0)
			goto undo;
		if (strcmp(type, "bind") == 0 || strcmp(type, "rbind") == 0)
			flags |= MS_BIND | (strcmp(type, "rbind") == 0 ? MS_REC : 0);
		/* A bind mount ignores MS_RDONLY until it is remounted. */
		if (mount(source, target, (flags & MS_BIND) ? NULL : type,
			flags & ~(unsigned long)((flags & MS_BIND) ? MS_RDONLY : 0),
			data[0] != '\0' ? data : NULL) < 0) {
			dprintf(
			    2, "mount %s (%s) on %s: %s", source, type, target, strerror(errno));
			goto undo;
		}
		done++;
		if ((flags & MS_BIND) && (flags & MS_RDONLY) &&
		    mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
			dprintf(2, "remount %s read-only: %s", target, strerror(errno));
			goto undo;
		}
	}
	return 0;
undo:
	while (done-- > 0)
		umount2(target, MNT_DETACH);
	return -1;
}

void
rootfs_unmount(const char *id, const char *target)
{
	int n = 0;

	/* Mounts may be stacked; each umount2 removes the top one. */
	while (umount2(target, MNT_DETACH) == 0)
		n++;
	if (errno != EINVAL && errno != ENOENT)
		log_warn_id(id, NULL, "unmount %s: %s", target, strerror(errno));
	else
		log_debug_id(
		    id, NULL, "unmounted the root filesystem (%d mount(s)) on %s", n, target);
}
