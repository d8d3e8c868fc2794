/*
 * vm-disk.c: hot-add and removal of a container's block rootfs through QMP (docs/ARCHITECTURE.md,
 * "Block devices and the bring-up lock").
 *
 * One struct vm_disks per VM tracks its hot-pluggable root ports (vm.hotplug_ports): each is
 * FREE, USED by one container's disk, or STUCK (a device the guest never released: reported
 * and never silently reused). Node names and device ids carry the shim's pid and a
 * process-wide counter, so two containers never collide, even when an id is reused after a
 * failure or a restarted shim finds the VM still holding nodes. The virtio serial is derived
 * from the container id and the counter and fits virtio-blk's 20 bytes.
 *
 * Threads: called from workers only. d->mu guards the slots and is held only to pick or
 * release a slot, never across a QMP command.
 *
 * Attach is blockdev-add (file or host_device), blockdev-add (raw), device_add
 * (virtio-blk-pci); a failing step undoes the steps before it, so a failed attach leaves
 * nothing attached and the port free. Detach is device_del, DEVICE_DELETED (bounded wait),
 * blockdev-del of both nodes.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "util.h"
#include "vm.h"

enum vm_slot_state {
	VM_SLOT_FREE,
	VM_SLOT_RESERVED, /* an attach is in progress */
	VM_SLOT_USED,
	VM_SLOT_STUCK,
};

struct vm_slot {
	char *port;
	enum vm_slot_state state;
	char *id; /* container id while reserved/used/stuck */
	char serial[VM_DISK_SERIAL_MAX + 1];
	char file_node[32];
	char fmt_node[32];
	char dev_id[32];
};

struct vm_disks {
	struct qmp *qmp;
	int unplug_timeout_ms;
	int qmp_timeout_ms;
	pthread_mutex_t mu; /* guards slots[] */
	struct vm_slot *slots;
	size_t nslots;
};

/* Process-wide, so names stay unique across every vm_disks of this shim. */
static atomic_ullong vm_disk_counter;

struct vm_disks *
vm_disks_new(struct qmp *q, const char *const *ports, size_t nports, int unplug_timeout_ms,
    int qmp_timeout_ms)
{
	struct vm_disks *d = xcalloc(1, sizeof *d);
	size_t i;

	d->qmp = q;
	d->unplug_timeout_ms = unplug_timeout_ms > 0 ? unplug_timeout_ms : 10000;
	d->qmp_timeout_ms = qmp_timeout_ms > 0 ? qmp_timeout_ms : 10000;
	pthread_mutex_init(&d->mu, NULL);
	d->slots = xcalloc(nports ? nports : 1, sizeof *d->slots);
	d->nslots = nports;
	for (i = 0; i < nports; i++)
		d->slots[i].port = xstrdup(ports[i]);
	return d;
}

void
vm_disks_free(struct vm_disks *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nslots; i++) {
		free(d->slots[i].port);
		free(d->slots[i].id);
	}
	free(d->slots);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

/* FNV-1a: a stable, well-mixed hash of the container id for the serial. */
static uint32_t
vm_disk_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/*
 * Find the slot holding id's live disk, or NULL. A stuck slot belongs to a container already
 * deleted, so it neither blocks a new container of the same id nor is detached again. mu held.
 */
static struct vm_slot *
vm_disk_find(struct vm_disks *d, const char *id)
{
	size_t i;

	for (i = 0; i < d->nslots; i++)
		if (d->slots[i].state != VM_SLOT_FREE && d->slots[i].state != VM_SLOT_STUCK &&
		    d->slots[i].id != NULL && strcmp(d->slots[i].id, id) == 0)
			return &d->slots[i];
	return NULL;
}

/* Reserve a free port for id and name its nodes. NULL with *st when none is free. */
static struct vm_slot *
vm_disk_reserve(struct vm_disks *d, const char *id, struct status *st)
{
	struct vm_slot *s = NULL;
	size_t i;
	unsigned long long n;

	pthread_mutex_lock(&d->mu);
	if (vm_disk_find(d, id) != NULL) {
		pthread_mutex_unlock(&d->mu);
		status_set(st, ST_ALREADY_EXISTS, "container %s already has a hot-added disk", id);
		return NULL;
	}
	for (i = 0; i < d->nslots; i++)
		if (d->slots[i].state == VM_SLOT_FREE) {
			s = &d->slots[i];
			break;
		}
	if (s == NULL) {
		pthread_mutex_unlock(&d->mu);
		status_set(
		    st, ST_RESOURCE_EXHAUSTED, "no free hotplug port (%zu configured)", d->nslots);
		return NULL;
	}
	n = atomic_fetch_add(&vm_disk_counter, 1) + 1;
	s->state = VM_SLOT_RESERVED;
	free(s->id);
	s->id = xstrdup(id);
	snprintf(s->serial, sizeof s->serial, "vs%08x%08llx", vm_disk_hash(id),
	    (unsigned long long)(n & 0xffffffffu));
	/* The pid keeps names unique when a restarted shim finds the VM still holding some. */
	snprintf(s->file_node, sizeof s->file_node, "vmshim-%d-file%llu", (int)getpid(),
	    (unsigned long long)n);
	snprintf(s->fmt_node, sizeof s->fmt_node, "vmshim-%d-disk%llu", (int)getpid(),
	    (unsigned long long)n);
	snprintf(
	    s->dev_id, sizeof s->dev_id, "vmshim-%d-dev%llu", (int)getpid(), (unsigned long long)n);
	pthread_mutex_unlock(&d->mu);
	return s;
}

/* Put a slot back in the given state. */
static void
vm_disk_release(struct vm_disks *d, struct vm_slot *s, enum vm_slot_state state)
{
	pthread_mutex_lock(&d->mu);
	s->state = state;
	if (state == VM_SLOT_FREE) {
		free(s->id);
		s->id = NULL;
	}
	pthread_mutex_unlock(&d->mu);
}

/* blockdev-del of one node; failures are logged (used on rollback and detach). */
static int
vm_disk_node_del(struct vm_disks *d, const char *node, struct status *st)
{
	cleanup_json json_t *args = json_pack("{s:s}", "node-name", node);

	return qmp_execute(d->qmp, "blockdev-del", args, d->qmp_timeout_ms, NULL, st);
}

int
vm_disk_attach(struct vm_disks *d, const char *id, const char *source, bool readonly,
    char serial[VM_DISK_SERIAL_MAX + 1], struct status *st)
{
	cleanup_json json_t *file_args = NULL, *fmt_args = NULL, *dev_args = NULL;
	struct status undo;
	struct vm_slot *s;
	struct stat sb;
	const char *driver;

	if (stat(source, &sb) < 0)
		return status_errno(st, errno == ENOENT ? ST_NOT_FOUND : ST_INVALID_ARGUMENT, errno,
		    "rootfs block source %s", source);
	if (S_ISREG(sb.st_mode))
		driver = "file";
	else if (S_ISBLK(sb.st_mode))
		driver = "host_device";
	else
		return status_set(st, ST_INVALID_ARGUMENT,
		    "rootfs block source %s: not a regular file or block device", source);

	s = vm_disk_reserve(d, id, st);
	if (s == NULL)
		return -1;

	file_args = json_pack("{s:s,s:s,s:s,s:b}", "driver", driver, "node-name", s->file_node,
	    "filename", source, "read-only", readonly);
	if (qmp_execute(d->qmp, "blockdev-add", file_args, d->qmp_timeout_ms, NULL, st) < 0) {
		status_wrap(st, "hot-add of %s for %s, step 1/3 (%s node)", source, id, driver);
		goto free_slot;
	}
	fmt_args = json_pack("{s:s,s:s,s:s,s:b}", "driver", "raw", "node-name", s->fmt_node, "file",
	    s->file_node, "read-only", readonly);
	if (qmp_execute(d->qmp, "blockdev-add", fmt_args, d->qmp_timeout_ms, NULL, st) < 0) {
		status_wrap(st, "hot-add of %s for %s, step 2/3 (raw node)", source, id);
		goto del_file;
	}
	dev_args = json_pack("{s:s,s:s,s:s,s:s,s:s}", "driver", "virtio-blk-pci", "id", s->dev_id,
	    "drive", s->fmt_node, "bus", s->port, "serial", s->serial);
	if (qmp_execute(d->qmp, "device_add", dev_args, d->qmp_timeout_ms, NULL, st) < 0) {
		status_wrap(st, "hot-add of %s for %s, step 3/3 (virtio-blk-pci on %s)", source, id,
		    s->port);
		goto del_fmt;
	}
	memcpy(serial, s->serial, sizeof s->serial);
	vm_disk_release(d, s, VM_SLOT_USED);
	log_info_id(id, "", "hot-added %.*s on %s as %s (serial %s)", LOG_STR_MAX, source, s->port,
	    s->dev_id, s->serial);
	return 0;

del_fmt:
	if (vm_disk_node_del(d, s->fmt_node, &undo) < 0)
		log_error_id(id, "", "rollback: blockdev-del %s: %s", s->fmt_node, undo.msg);
del_file:
	if (vm_disk_node_del(d, s->file_node, &undo) < 0)
		log_error_id(id, "", "rollback: blockdev-del %s: %s", s->file_node, undo.msg);
free_slot:
	vm_disk_release(d, s, VM_SLOT_FREE);
	log_warn_id(id, "", "%s", st->msg);
	return -1;
}

int
vm_disk_detach(struct vm_disks *d, const char *id, struct status *st)
{
	cleanup_json json_t *args = NULL;
	struct vm_slot *s;
	uint64_t seq;
	int64_t deadline;
	bool gone;
	int r;

	pthread_mutex_lock(&d->mu);
	s = vm_disk_find(d, id);
	if (s != NULL && s->state != VM_SLOT_USED)
		s = NULL; /* reserved: an attach owns it */
	if (s != NULL)
		s->state = VM_SLOT_RESERVED;
	pthread_mutex_unlock(&d->mu);
	if (s == NULL)
		return 0;

	seq = qmp_event_seq(d->qmp);
	args = json_pack("{s:s}", "id", s->dev_id);
	gone = false;
	if (qmp_execute(d->qmp, "device_del", args, d->qmp_timeout_ms, NULL, st) < 0) {
		if (st->code != ST_NOT_FOUND) {
			/*
			 * The container is being deleted either way: keep the port out of use
			 * (never reused, never silently left USED under a deleted id).
			 */
			vm_disk_release(d, s, VM_SLOT_STUCK);
			log_error_id(id, "", "device_del %s on %s failed: %s; port kept out of use",
			    s->dev_id, s->port, st->msg);
			return status_wrap(st, "remove disk of %s: device_del %s", id, s->dev_id);
		}
		gone = true; /* already unplugged */
	}
	deadline = time_mono_ms() + d->unplug_timeout_ms;
	if (!gone && qmp_wait_event(d->qmp, seq, "DEVICE_DELETED", s->dev_id, deadline, st) < 0) {
		vm_disk_release(d, s, VM_SLOT_STUCK);
		log_error_id(id, "",
		    "guest did not release %s on %s within %d ms; port kept out of use", s->dev_id,
		    s->port, d->unplug_timeout_ms);
		return status_wrap(st, "remove disk of %s: %s on %s not released by the guest", id,
		    s->dev_id, s->port);
	}
	r = 0;
	if (vm_disk_node_del(d, s->fmt_node, st) < 0 || vm_disk_node_del(d, s->file_node, st) < 0)
		r = status_wrap(st, "remove disk of %s: blockdev-del", id);
	vm_disk_release(d, s, r == 0 ? VM_SLOT_FREE : VM_SLOT_STUCK);
	if (r == 0)
		log_info_id(id, "", "removed %s from %s", s->dev_id, s->port);
	return r;
}

void
vm_disks_counts(struct vm_disks *d, size_t *free_ports, size_t *used, size_t *stuck)
{
	size_t i;

	*free_ports = *used = *stuck = 0;
	pthread_mutex_lock(&d->mu);
	for (i = 0; i < d->nslots; i++) {
		if (d->slots[i].state == VM_SLOT_FREE)
			(*free_ports)++;
		else if (d->slots[i].state == VM_SLOT_STUCK)
			(*stuck)++;
		else
			(*used)++;
	}
	pthread_mutex_unlock(&d->mu);
}
