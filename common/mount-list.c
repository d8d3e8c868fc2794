/*
 * mount-list.c: mount containerd's root filesystem list on a host directory (mount-list.h).
 *
 * Entries are mounted in order on the same target, as containerd's own mount helper does:
 * the last one is what the container sees. A bind mount that asks for ro takes effect only
 * on a remount, so it gets one. Undo unmounts with MNT_DETACH until nothing is left stacked
 * on the target, so a process still holding a file cannot keep the mount busy, and then
 * removes the directory; it never descends into the target. The target's directory may be
 * writable by someone else (the guest, for the microVM's share): a symlink in its place is
 * never followed, neither to mount nor to unmount (O_NOFOLLOW, UMOUNT_NOFOLLOW), but removed.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msg.h"
#include "mount-list.h"
#include "util.h"

/* mount(8) words that are flags, not filesystem data. */
static const struct {
	const char *word;
	unsigned long set, clear;
} mount_list_flags[] = {
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
    {"strictatime", MS_STRICTATIME, 0},
    {"defaults", 0, 0},
    /* Propagation words are accepted and not applied: the mount keeps its parent's. */
    {"private", 0, 0},
    {"rprivate", 0, 0},
    {"slave", 0, 0},
    {"rslave", 0, 0},
    {"shared", 0, 0},
    {"rshared", 0, 0},
};

int
mount_list_options(
    json_t *opts, const char *where, unsigned long *flags, char *data, struct status *st)
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
		for (k = 0; k < ARRAY_SIZE(mount_list_flags); k++) {
			if (strcmp(w, mount_list_flags[k].word) == 0) {
				*flags =
				    (*flags | mount_list_flags[k].set) & ~mount_list_flags[k].clear;
				found = true;
				break;
			}
		}
		if (found)
			continue;
		if (n + strlen(w) + 2 > MOUNT_LIST_DATA_MAX)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s.options: longer than %d bytes", where, MOUNT_LIST_DATA_MAX);
		n += (size_t)snprintf(data + n, MOUNT_LIST_DATA_MAX - n, "%s%s", n ? "," : "", w);
	}
	return 0;
}

int
mount_list_check(json_t *mounts, const char *where, struct status *st)
{
	char data[MOUNT_LIST_DATA_MAX];
	unsigned long flags;
	size_t i;
	json_t *m;

	if (!json_is_array(mounts))
		return status_set(st, ST_INVALID_ARGUMENT, "%s: expected an array", where);
	if (json_array_size(mounts) > MOUNT_LIST_MAX)
		return status_set(
		    st, ST_INVALID_ARGUMENT, "%s: more than %d mounts", where, MOUNT_LIST_MAX);
	json_array_foreach (mounts, i, m) {
		char at[96];
		const char *type = NULL, *source = NULL;
		json_t *opts = NULL;

		snprintf(at, sizeof at, "%s[%zu]", where, i);
		if (msg_get_string(m, at, "type", true, &type, st) < 0 ||
		    msg_get_string(m, at, "source", true, &source, st) < 0 ||
		    msg_get_array(m, at, "options", false, &opts, st) < 0 ||
		    mount_list_options(opts, at, &flags, data, st) < 0)
			return -1;
		if (*type == '\0')
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s.type: must not be empty", at);
	}
	return 0;
}

int
mount_list_undo(const char *target)
{
	struct stat sb;

	/* UMOUNT_NOFOLLOW: a symlink someone put in target's place is not followed. */
	while (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		; /* every mount stacked on it */
	if (lstat(target, &sb) == 0 && !S_ISDIR(sb.st_mode))
		return unlink(target) < 0 ? -errno : 0;
	if (rmdir(target) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/*
 * target as a directory of its own, opened O_PATH without following a symlink in its last
 * component (a non-directory there is removed first); its parents are made as needed.
 */
static int
mount_list_target(const char *target, struct status *st)
{
	cleanup_free char *parent = xstrdup(target);
	char *slash = strrchr(parent, '/');
	struct stat sb;
	int fd;

	if (slash != NULL && slash != parent) {
		*slash = '\0';
		if (mkdir_p(parent, 0700) < 0)
			return status_errno(st, ST_INTERNAL, errno, "mkdir %s", parent);
	}
	if (lstat(target, &sb) == 0 && !S_ISDIR(sb.st_mode) && unlink(target) < 0)
		return status_errno(st, ST_INTERNAL, errno, "unlink %s", target);
	if (mkdir(target, 0700) < 0 && errno != EEXIST)
		return status_errno(st, ST_INTERNAL, errno, "mkdir %s", target);
	fd = open(target, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return status_errno(st, ST_INTERNAL, errno, "open %s", target);
	return fd;
}

int
mount_list_apply(json_t *mounts, const char *target, unsigned long force, struct status *st)
{
	char data[MOUNT_LIST_DATA_MAX], via[64];
	unsigned long flags;
	size_t i;
	json_t *m;
	int fd = mount_list_target(target, st);

	if (fd < 0)
		return -1;
	/*
	 * The first mount goes on the directory opened without following symlinks; once it
	 * is a mount point nobody can rename or replace it, so the rest go by path.
	 */
	snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
	json_array_foreach (mounts, i, m) {
		const char *type = json_string_value(json_object_get(m, "type"));
		const char *source = json_string_value(json_object_get(m, "source"));
		const char *on = i == 0 ? via : target;
		bool bind = strcmp(type, "bind") == 0 || strcmp(type, "rbind") == 0;
		int r;

		mount_list_options(json_object_get(m, "options"), "", &flags, data, st);
		flags |= force;
		if (bind)
			flags |= MS_BIND;
		/* A bind takes ro and the like only on a remount. */
		r = mount(source, on, type, bind ? flags & ~(MS_RDONLY | force) : flags,
		    data[0] ? data : NULL);
		if (r == 0 && bind && (flags & (MS_RDONLY | force)) != 0)
			r = mount(NULL, target, NULL, flags | MS_REMOUNT, NULL);
		if (r < 0) {
			int err = errno;

			close(fd);
			mount_list_undo(target);
			return status_errno(st, ST_INTERNAL, err, "mount [%zu] (%s %s) on %s", i,
			    type, source, target);
		}
	}
	close(fd);
	return 0;
}
