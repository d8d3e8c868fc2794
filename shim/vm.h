/*
 * vm.h: what the shim does to the VM itself, through the VMM's own API (docs/ARCHITECTURE.md,
 * "Block devices and the bring-up lock").
 *
 * vm-qmp.c   a QMP client for QEMU: one channel per VM, used only from worker threads.
 * vm-disk.c  hot-add and removal of block devices (blockdev-add, device_add virtio-blk-pci on
 *            a free pcie-root-port, device_del + DEVICE_DELETED, blockdev-del), with rollback.
 * vm-lock.c  the per-VM bring-up lock for confidential VMs (whose guests crash when two
 *            bring-ups overlap).
 *
 * All of it blocks on QEMU and so runs on workers, never on the loop thread.
 */
#ifndef VMSHIM_VM_H
#define VMSHIM_VM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* vm-qmp.c */

struct qmp;

/* A channel to the QMP socket at path; connects lazily on the first command. */
struct qmp *qmp_new(const char *path, int connect_timeout_ms);
/* Fail pending commands, join the reader thread, close the socket. */
void qmp_free(struct qmp *q);
/*
 * Run one command (args borrowed, may be NULL) and wait up to timeout_ms for its answer.
 * 0 with *ret (caller decrefs; may be NULL to ignore), or -1 with *st: QMP's own error as
 * "<command>: <desc>" (DeviceNotFound -> NOT_FOUND, CommandNotFound -> UNIMPLEMENTED, any other
 * class -> FAILED_PRECONDITION), DEADLINE_EXCEEDED, or UNAVAILABLE when QEMU is not there. A
 * channel whose QEMU went away reconnects on the next command.
 */
int qmp_execute(struct qmp *q, const char *command, json_t *args, int timeout_ms, json_t **ret,
    struct status *st);
/* The sequence number of the last event received: pass it to qmp_wait_event. */
uint64_t qmp_event_seq(struct qmp *q);
/*
 * Wait until an event named `event` arrives with sequence > after_seq and, when device is not
 * NULL, data.device equal to it; up to the monotonic deadline. 0, or -1 with *st
 * (DEADLINE_EXCEEDED, UNAVAILABLE).
 */
int qmp_wait_event(struct qmp *q, uint64_t after_seq, const char *event, const char *device,
    int64_t deadline_ms, struct status *st);

enum qmp_msg_kind {
	QMP_MSG_GREETING,
	QMP_MSG_RETURN,
	QMP_MSG_ERROR,
	QMP_MSG_EVENT,
};

/* One message QEMU sent, classified (pure parsing: the fuzzer drives this). */
struct qmp_msg {
	enum qmp_msg_kind kind;
	json_t *root;	       /* owns the rest */
	const char *id;	       /* RETURN/ERROR: our string id, or NULL */
	json_t *ret;	       /* RETURN: borrowed */
	const char *err_class; /* ERROR */
	const char *err_desc;
	const char *event; /* EVENT */
	json_t *data;	   /* EVENT: borrowed, may be NULL */
};

int qmp_msg_parse(const char *line, size_t len, struct qmp_msg *out, struct status *st);
void qmp_msg_clear(struct qmp_msg *m);

/* vm-disk.c */

#define VM_DISK_SERIAL_MAX 20 /* virtio-blk's serial limit, in bytes */

struct vm_disks;

/* Hot-add bookkeeping for one VM: ports from vm.hotplug_ports. */
struct vm_disks *vm_disks_new(struct qmp *q, const char *const *ports, size_t nports,
    int unplug_timeout_ms, int qmp_timeout_ms);
void vm_disks_free(struct vm_disks *d);
/*
 * Hot-add source (an image file or a block device) for container id. On success the virtio
 * serial the guest sees is in serial (NUL-terminated). On failure every step already done is
 * rolled back, the port is free again and *st says which step failed. All ports taken:
 * RESOURCE_EXHAUSTED; id already has a disk: ALREADY_EXISTS.
 */
int vm_disk_attach(struct vm_disks *d, const char *id, const char *source, bool readonly,
    char serial[VM_DISK_SERIAL_MAX + 1], struct status *st);
/*
 * Remove id's disk: device_del, wait for DEVICE_DELETED up to the unplug timeout, blockdev-del.
 * A device the guest never releases is reported (DEADLINE_EXCEEDED) and its port is kept out
 * of use, never silently reused. No disk for id: 0 (nothing to do).
 */
int vm_disk_detach(struct vm_disks *d, const char *id, struct status *st);
/* Counts for tests and logs. */
void vm_disks_counts(struct vm_disks *d, size_t *free_ports, size_t *used, size_t *stuck);

/* vm-lock.c */

struct vm_bringup;

struct vm_bringup *vm_bringup_new(bool confidential);
void vm_bringup_free(struct vm_bringup *b);
/*
 * Begin a container's bring-up. With a confidential VM this takes the per-VM lock, which is
 * held until vm_bringup_end (the lock exists to serialize exactly this span); otherwise it
 * returns at once. Logs and returns the time waited in ms.
 */
int64_t vm_bringup_begin(struct vm_bringup *b, const char *id);
void vm_bringup_end(struct vm_bringup *b, const char *id);

#endif
