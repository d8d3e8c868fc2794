/*
 * disk.c: find a hot-added virtio disk by its serial (see disk.h).
 *
 * Called from the loop thread while MountDisk polls for the disk; it only reads sysfs, whose
 * small attribute files never block. Owns nothing beyond the call.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk.h"
#include "util.h"

#define DISK_SERIAL_MAX 20 /* bytes of serial a virtio-blk device carries */

/* Read /sys/block/NAME/serial into buf without its trailing newline. 0 or -1. */
static int
disk_read_serial(const char *name, char *buf, size_t size)
{
	char path[300];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/sys/block/%s/serial", name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\0'))
		n--;
	buf[n] = '\0';
	return 0;
}

int
disk_resolve(char **source)
{
	const size_t plen = strlen(DISK_BYID_PREFIX);
	const char *serial;
	struct dirent *e;
	struct stat sb;
	char dev[300];
	int found = -1;
	DIR *d;

	if (stat(*source, &sb) == 0)
		return 0;
	if (strncmp(*source, DISK_BYID_PREFIX, plen) != 0 || (*source)[plen] == '\0')
		return -1;
	serial = *source + plen;
	if ((d = opendir("/sys/block")) == NULL)
		return -1;
	while (found < 0 && (e = readdir(d)) != NULL) {
		char got[64];

		if (e->d_name[0] == '.' || disk_read_serial(e->d_name, got, sizeof got) < 0 ||
		    got[0] == '\0')
			continue;
		if (strcmp(got, serial) != 0 &&
		    !(strlen(got) == DISK_SERIAL_MAX && strncmp(got, serial, DISK_SERIAL_MAX) == 0))
			continue;
		snprintf(dev, sizeof dev, "/dev/%s", e->d_name);
		if (stat(dev, &sb) == 0 && S_ISBLK(sb.st_mode))
			found = 0;
	}
	closedir(d);
	if (found == 0) {
		free(*source);
		*source = xstrdup(dev);
	}
	return found;
}
