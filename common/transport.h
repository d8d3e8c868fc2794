/*
 * transport.h: how vmshim reaches its peers and how its servers listen.
 *
 * Endpoints are strings: "unix:PATH" (a plain Unix stream socket), "vsock:CID:PORT"
 * (AF_VSOCK), "uds:PATH:PORT" (hybrid vsock: the Unix socket that Firecracker and Cloud
 * Hypervisor expose for the guest's vsock device; PORT is the guest port). For uds: the port is
 * after the last ':'.
 *
 * Connecting is non-blocking with a deadline on the monotonic clock. The hybrid handshake
 * writes "CONNECT <port>\n" and reads the answer one byte at a time, so not one byte of the
 * guest's data after the newline is consumed; an answer that is not "OK <n>\n" within
 * HYBRID_LINE_MAX bytes and the deadline is a failed connect.
 *
 * Every descriptor returned is O_CLOEXEC and in blocking mode; the caller owns it.
 * Functions are thread-safe and may block up to their deadline: call them from workers or
 * dedicated threads, never from the loop thread.
 */
#ifndef VMSHIM_TRANSPORT_H
#define VMSHIM_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "status.h"

#define HYBRID_LINE_MAX 32 /* bytes, newline included */

enum endpoint_kind {
	ENDPOINT_UNIX,
	ENDPOINT_VSOCK,
	ENDPOINT_HYBRID,
};

struct endpoint {
	enum endpoint_kind kind;
	char path[108]; /* unix and hybrid: sizeof(sun_path) */
	uint32_t cid;	/* vsock */
	uint32_t port;	/* vsock and hybrid */
};

/* Parse an endpoint string; errors are INVALID_ARGUMENT naming what is wrong. */
int endpoint_parse(const char *s, struct endpoint *ep, struct status *st);
/* Format back to the string form. */
void endpoint_format(const struct endpoint *ep, char *buf, size_t len);

/* Connect with a deadline (ms from now; <= 0 means 5000). Returns fd or -1 with *st set
 * (UNAVAILABLE for refused/absent peers and failed handshakes, DEADLINE_EXCEEDED on timeout). */
int transport_connect(const struct endpoint *ep, int timeout_ms, struct status *st);

/* Client side of the hybrid handshake on a connected stream socket. 0 or -1 with *st. */
int hybrid_handshake(int fd, uint32_t port, int64_t deadline_ms, struct status *st);
/*
 * Server side: parse one handshake line (without its '\n'): "CONNECT <port>", the word in any
 * case, one space, a decimal u32. 0 with *port set, or -1.
 */
int hybrid_parse_connect(const char *line, size_t len, uint32_t *port);
/*
 * Server side: read the line byte by byte from fd until '\n' (at most HYBRID_LINE_MAX bytes,
 * by the deadline), parse it. 0 with *port, or -1 with *st. Consumes nothing past '\n'.
 */
int hybrid_accept_line(int fd, int64_t deadline_ms, uint32_t *port, struct status *st);

/*
 * Listen on a Unix stream socket at path: removes a stale socket file, creates the parent
 * directory 0700 if missing, binds with the socket file at `mode`. Returns the fd
 * (non-blocking, O_CLOEXEC) or -1 with *st.
 */
int transport_listen_unix(const char *path, mode_t mode, int backlog, struct status *st);
/* Listen on AF_VSOCK, any CID, port. Returns the fd (non-blocking, O_CLOEXEC) or -1. */
int transport_listen_vsock(uint32_t port, int backlog, struct status *st);

/* accept4 with SOCK_CLOEXEC (and SOCK_NONBLOCK if asked). fd or -errno. */
int transport_accept(int listen_fd, bool nonblock);
/* SO_PEERCRED of a Unix socket peer. 0 or -errno. */
int transport_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

#endif
