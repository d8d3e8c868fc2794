/*
 * disk.h: finding a hot-added virtio disk in the guest by its serial.
 *
 * The shim names a disk by the serial it gave the virtio-blk device; MountDisk looks for
 * /dev/disk/by-id/virtio-SERIAL, the link udev makes. A small guest (the vmshim guest image
 * runs no udev) has no such link, so the device is also looked up in sysfs, where virtio_blk
 * publishes each disk's serial as /sys/block/NAME/serial.
 */
#ifndef VMSHIM_AGENT_DISK_H
#define VMSHIM_AGENT_DISK_H

/* The prefix of the by-id path MountDisk asks for; the serial follows it. */
#define DISK_BYID_PREFIX "/dev/disk/by-id/virtio-"

/*
 * If *source exists, 0. Else, when it is DISK_BYID_PREFIX SERIAL and a disk in /sys/block has
 * that serial (virtio-blk keeps at most 20 bytes of it) and its /dev node exists, *source is
 * replaced by "/dev/NAME" (the old string freed) and 0 returned. Otherwise -1: not there yet.
 */
int disk_resolve(char **source);

#endif
