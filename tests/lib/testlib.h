/*
 * testlib.h: small helpers the test programs share (tests/lib/libtestlib.a, built for make
 * check only).
 *
 * Only what more than one test program needs and no daemon does: a plain connect to a Unix
 * socket (the integration clients) and a count of this process's descriptors (unit tests
 * that check nothing leaks). Nothing here keeps state; any thread may call it.
 */
#ifndef VMSHIM_TESTLIB_H
#define VMSHIM_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>

/* A connected, blocking, O_CLOEXEC stream socket to the Unix socket at path; -1 with errno. */
int testlib_connect(const char *path);
/* The same, or print "FAIL: connect PATH: why" and exit 1. */
int testlib_connect_or_exit(const char *path);

/*
 * How many descriptors this process has open (not counting the one used to count them).
 * io_only counts only sockets and eventfds, the descriptors the RPC and stream code opens:
 * under a sanitizer, whose runtime opens and closes files of its own at any moment, only that
 * count is stable. -1 when /proc/self/fd cannot be read.
 */
int testlib_fd_count(bool io_only);

/*
 * Is something mounted on path (a line of /proc/self/mounts names it)? When opts is not NULL
 * it gets the rest of that line (type, options).
 */
bool testlib_mounted(const char *path, char *opts, size_t len);

#endif
