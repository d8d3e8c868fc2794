/*
 * control-mount.c: MountDisk and UnmountDisk.
 *
 * Runs on the loop thread. MountDisk waits (a timer, never blocking the loop) for the
 * hot-added disk's by-id link for up to AGENT_MOUNT_WAIT_MS, then mounts it in a helper child
 * (proc_helper_fork), whose callback answers; UnmountDisk unmounts in a helper child too. The
 * struct control_call owns the paths and the timer until it is answered. In the local VM there
 * is no disk: both answer at once. MountDisk with a container id opens that container's
 * bring-up span for the overlap switch (control-overlap.c).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "disk.h"
#include "log.h"
#include "msg.h"
#include "util.h"

#define CONTROL_MOUNT_POLL_MS 100

struct control_mount_opt {
	const char *name;
	unsigned long flag;
	bool clear;
};

static const struct control_mount_opt control_mount_opts[] = {
    {"ro", MS_RDONLY, false},
    {"rw", MS_RDONLY, true},
    {"nosuid", MS_NOSUID, false},
    {"suid", MS_NOSUID, true},
    {"nodev", MS_NODEV, false},
    {"dev", MS_NODEV, true},
    {"noexec", MS_NOEXEC, false},
    {"exec", MS_NOEXEC, true},
    {"relatime", MS_RELATIME, false},
    {"noatime", MS_NOATIME, false},
    {"sync", MS_SYNCHRONOUS, false},
    {"defaults", 0, false},
};

/* Split OCI-style options into mount flags and the data string. */
static int
control_mount_options(json_t *opts, unsigned long *flags, char **data, struct status *st)
{
	size_t i, j, len = 0;
	char *d = xstrdup("");
	const char *o;

	*flags = 0;
	for (i = 0; i < json_array_size(opts); i++) {
		if (!json_is_string(json_array_get(opts, i))) {
			free(d);
			return status_set(
			    st, ST_INVALID_ARGUMENT, "payload.options[%zu]: expected string", i);
		}
		o = json_string_value(json_array_get(opts, i));
		for (j = 0; j < ARRAY_SIZE(control_mount_opts); j++) {
			if (strcmp(o, control_mount_opts[j].name) == 0)
				break;
		}
		if (j < ARRAY_SIZE(control_mount_opts)) {
			if (control_mount_opts[j].clear)
				*flags &= ~control_mount_opts[j].flag;
			else
				*flags |= control_mount_opts[j].flag;
			continue;
		}
		d = xrealloc(d, len + strlen(o) + 2);
		if (len > 0)
			d[len++] = ',';
		strcpy(d + len, o);
		len += strlen(o);
	}
	*data = d;
	return 0;
}

/* In a helper child: create the target and mount. */
static int
control_mount_child(void *arg)
{
	struct control_call *k = arg;

	if (mkdir_p(k->target, 0755) < 0) {
		dprintf(2, "mkdir %.*s: %s", LOG_STR_MAX, k->target, strerror(errno));
		return 1;
	}
	if (mount(k->source, k->target, k->fstype, k->flags, k->data) < 0) {
		dprintf(2, "mount %.*s on %.*s (%.*s): %s", LOG_STR_MAX, k->source, LOG_STR_MAX,
		    k->target, LOG_STR_MAX, k->fstype, strerror(errno));
		return 1;
	}
	return 0;
}

/* The mount helper finished: answer {mounted, source, message}. */
static void
control_mount_done(int wstatus, const char *output, size_t len, void *arg)
{
	struct control_call *k = arg;
	struct status st;
	json_t *res;

	if (proc_wait_status(wstatus) != 0) {
		status_set(&st, ST_INTERNAL, "%s", len > 0 ? output : "mount failed");
		log_error_id(k->c != NULL ? k->c->id : NULL, NULL, "%s", st.msg);
		control_call_done(k, &st, NULL);
		return;
	}
	log_info("mounted %.*s on %.*s", LOG_STR_MAX, k->source, LOG_STR_MAX, k->target);
	status_clear(&st);
	res = json_pack("{s:b, s:s, s:s}", "mounted", 1, "source", k->source, "message", "");
	control_call_done(k, &st, res);
	json_decref(res);
}

/* Wait for the disk's by-id link (the hot-add may still be settling), then mount. */
static void
control_mount_poll(evutil_socket_t fd, short what, void *arg)
{
	struct control_call *k = arg;
	struct timeval tv = {0, CONTROL_MOUNT_POLL_MS * 1000};
	int64_t now = time_mono_ms();
	struct status st;
	json_t *res;

	if (now < k->hold_until) {
		tv.tv_sec = (k->hold_until - now) / 1000;
		tv.tv_usec = (k->hold_until - now) % 1000 * 1000;
		evtimer_add(k->timer, &tv);
		return;
	}
	if (agent.local_vm) {
		log_info_id(k->id, NULL, "mount skipped: local VM (serial %.*s, target %.*s)",
		    LOG_STR_MAX, k->source + strlen(DISK_BYID_PREFIX), LOG_STR_MAX, k->target);
		status_clear(&st);
		res = json_pack("{s:b, s:s, s:s}", "mounted", 0, "source", "", "message",
		    "mount skipped: local VM");
		control_call_done(k, &st, res);
		json_decref(res);
		return;
	}
	if (disk_resolve(&k->source) < 0) {
		if (time_mono_ms() < k->deadline) {
			evtimer_add(k->timer, &tv);
			return;
		}
		status_set(&st, ST_NOT_FOUND, "disk %.*s did not appear within %d s", LOG_STR_MAX,
		    k->source, AGENT_MOUNT_WAIT_MS / 1000);
		control_call_done(k, &st, NULL);
		return;
	}
	if (proc_helper_fork(control_mount_child, k, control_mount_done, k, &st) < 0)
		control_call_done(k, &st, NULL);
}

/* MountDisk: wait for the hot-added disk, then mount it in a helper child. */
void
control_mount(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	const char *id = "", *serial = NULL, *target = NULL, *fstype = "ext4";
	json_t *opts = NULL, *res;
	struct control_call *k;
	struct status st;
	unsigned long mflags;
	char *data = NULL;

	if (msg_get_string(payload, "payload", "id", false, &id, &st) < 0 ||
	    protocol_check_id("id", id, true, &st) < 0 ||
	    msg_get_string(payload, "payload", "serial", true, &serial, &st) < 0 ||
	    msg_get_string(payload, "payload", "target", true, &target, &st) < 0 ||
	    msg_get_string(payload, "payload", "fstype", false, &fstype, &st) < 0 ||
	    msg_get_array(payload, "payload", "options", false, &opts, &st) < 0)
		goto fail;
	if (serial[0] == '\0' || strchr(serial, '/') != NULL) {
		status_set(&st, ST_INVALID_ARGUMENT, "payload.serial: invalid \"%.64s\"", serial);
		goto fail;
	}
	if (target[0] != '/') {
		status_set(&st, ST_INVALID_ARGUMENT, "payload.target: must be an absolute path");
		goto fail;
	}
	if (control_mount_options(opts, &mflags, &data, &st) < 0)
		goto fail;
	if (id[0] != '\0')
		control_bringup_begin(id);
	if (agent.local_vm && agent.test_span_hold_ms == 0) {
		log_info_id(id, NULL, "mount skipped: local VM (serial %.*s, target %.*s)",
		    LOG_STR_MAX, serial, LOG_STR_MAX, target);
		free(data);
		res = json_pack("{s:b, s:s, s:s}", "mounted", 0, "source", "", "message",
		    "mount skipped: local VM");
		rpc_conn_respond(conn, sid, ST_OK, "", res);
		json_decref(res);
		return;
	}
	k = control_call_new(conn, sid, "MountDisk", container_find(id), NULL);
	k->id = xstrdup(id);
	xasprintf(&k->source, "%s%s", DISK_BYID_PREFIX, serial);
	k->target = xstrdup(target);
	k->fstype = xstrdup(fstype);
	k->data = data;
	k->flags = mflags;
	/*
	 * Test knob (VMSHIM_TEST_SPAN_HOLD_MS): the span stays open so long that, if the shim
	 * lets a second bring-up start meanwhile, it certainly meets this one (the spans are
	 * too short to meet by chance).
	 */
	if (id[0] != '\0')
		k->hold_until = time_mono_ms() + agent.test_span_hold_ms;
	k->deadline = time_mono_ms() + agent.test_span_hold_ms + AGENT_MOUNT_WAIT_MS;
	k->timer = evtimer_new(agent.base, control_mount_poll, k);
	control_mount_poll(-1, 0, k);
	return;
fail:
	rpc_conn_respond_status(conn, sid, &st);
}

/* In a helper child: unmount the target. */
static int
control_umount_child(void *arg)
{
	struct control_call *k = arg;

	if (umount2(k->target, 0) < 0) {
		dprintf(2, "umount %s: %s", k->target, strerror(errno));
		return 1;
	}
	return 0;
}

/* The unmount helper finished: answer {} or its message. */
static void
control_umount_done(int wstatus, const char *output, size_t len, void *arg)
{
	struct control_call *k = arg;
	struct status st;

	if (proc_wait_status(wstatus) != 0)
		status_set(&st, ST_INTERNAL, "%s", len > 0 ? output : "umount failed");
	else
		status_clear(&st);
	control_call_done(k, &st, NULL);
}

/* UnmountDisk: unmount in a helper child (nothing to do in the local VM). */
void
control_unmount(struct rpc_conn *conn, uint32_t sid, uint8_t flags, json_t *payload)
{
	const char *target = NULL;
	struct control_call *k;
	struct status st;

	if (msg_get_string(payload, "payload", "target", true, &target, &st) < 0) {
		rpc_conn_respond_status(conn, sid, &st);
		return;
	}
	if (agent.local_vm) {
		rpc_conn_respond(conn, sid, ST_OK, "", NULL);
		return;
	}
	k = control_call_new(conn, sid, "UnmountDisk", NULL, NULL);
	k->target = xstrdup(target);
	if (proc_helper_fork(control_umount_child, k, control_umount_done, k, &st) < 0)
		control_call_done(k, &st, NULL);
}
