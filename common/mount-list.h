/*
 * mount-list.h: a container's root filesystem as containerd describes it, mounted on the host.
 *
 * containerd hands a shim the container's root as an ordered list of mounts ({type, source,
 * options}: an overlay of the image's snapshots, or a bind mount). Whoever mounts it on the
 * host uses these: the local VM's agent (its containers' root) and the shim's share mounter
 * for a microVM (the root the guest reaches through 9p). The list is checked whole before the
 * first mount: at most MOUNT_LIST_MAX entries, each with a non-empty type and a source, options
 * as strings; mount(8) flag words (ro, nosuid, bind, ...) become mount flags and every other
 * word joins the filesystem data (lowerdir=..., upperdir=...), at most MOUNT_LIST_DATA_MAX
 * bytes. Thread-safe; owns nothing.
 */
#ifndef VMSHIM_MOUNT_LIST_H
#define VMSHIM_MOUNT_LIST_H

#include <jansson.h>

#include "status.h"

#define MOUNT_LIST_MAX	    16
#define MOUNT_LIST_DATA_MAX 8192

/*
 * Split a mount's options (a JSON array of strings, or NULL) into mount flags and the data
 * string; data holds MOUNT_LIST_DATA_MAX bytes. INVALID_ARGUMENT naming where.options[i].
 */
int mount_list_options(
    json_t *opts, const char *where, unsigned long *flags, char *data, struct status *st);
/* INVALID_ARGUMENT naming where[i].field when mounts is not a well-formed list. */
int mount_list_check(json_t *mounts, const char *where, struct status *st);
/*
 * Create target (mode 0700, parents too; a symlink or file in its place is removed, never
 * followed) and mount every entry on it in order, each with the flags in force added (e.g.
 * MS_NOSUID | MS_NODEV). A failure undoes what was mounted (mount_list_undo) and says which
 * entry failed. The list must have passed mount_list_check.
 */
int mount_list_apply(json_t *mounts, const char *target, unsigned long force, struct status *st);
/*
 * Lazily unmount everything stacked on target (not following a symlink there), then remove
 * it (a non-directory in its place is unlinked): 0, or -errno.
 */
int mount_list_undo(const char *target);

#endif
