/*
 * testlib.c: the helpers of testlib.h. See there; no state, no threads of its own.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testlib.h"

int
testlib_connect(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int fd, err;

	if (strlen(path) >= sizeof un.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(un.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&un, sizeof un) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int
testlib_connect_or_exit(const char *path)
{
	int fd = testlib_connect(path);

	if (fd < 0) {
		printf("FAIL: connect %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

/* Whether the descriptor behind /proc/self/fd/name is a socket or an eventfd. */
static bool
testlib_fd_is_io(const char *name)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof path, "/proc/self/fd/%s", name);
	n = readlink(path, link, sizeof link - 1);
	if (n <= 0)
		return false;
	link[n] = '\0';
	return strncmp(link, "socket:", 7) == 0 || strcmp(link, "anon_inode:[eventfd]") == 0;
}

int
testlib_fd_count(bool io_only)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (io_only ? testlib_fd_is_io(e->d_name) : atoi(e->d_name) != dirfd(d))
			n++;
	}
	closedir(d);
	return n;
}

bool
testlib_mounted(const char *path, char *opts, size_t len)
{
	char line[8192], want[4300];
	bool found = false;
	FILE *f = fopen("/proc/self/mounts", "re");

	if (f == NULL)
		return false;
	snprintf(want, sizeof want, " %s ", path);
	while (!found && fgets(line, sizeof line, f) != NULL) {
		char *at = strstr(line, want);

		found = at != NULL;
		if (found && opts != NULL)
			snprintf(opts, len, "%s", at + strlen(want));
	}
	fclose(f);
	return found;
}
