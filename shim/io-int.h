/*
 * io-int.h: what io-prepare.c hands to io-bridge.c; not for the rest of the shim.
 *
 * struct io_prepared is built on a worker by io_prepare() and owned by whoever holds the
 * pointer: io_prepared_free() closes what it holds, io_start() takes the descriptors out.
 */
#ifndef VMSHIM_IO_INT_H
#define VMSHIM_IO_INT_H

#include <stdbool.h>

#include "protocol.h"

/* The data plane's names for the wire's stdio kinds. */
enum io_kind {
	IO_STDIN = STDIO_IN,
	IO_STDOUT = STDIO_OUT,
	IO_STDERR = STDIO_ERR,
	IO_NSTREAMS = STDIO_N,
};

struct io_prepared_stream {
	bool present;
	int host_fd;	   /* stdin: FIFO O_RDONLY; output: FIFO O_RDWR or regular file */
	bool host_is_file; /* output to a regular file: written synchronously, never polled */
	int guest_fd;	   /* connected, hello sent (and our EOF on output streams), blocking */
};

struct io_prepared {
	char *id;
	char *exec_id;
	bool terminal;
	struct io_prepared_stream st[IO_NSTREAMS];
};

/* "stdin", "stdout", "stderr": the stream names of docs/PROTOCOL.md section 3. */
const char *io_kind_name(enum io_kind kind);

#endif
