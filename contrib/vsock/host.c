/*
 * host.c: the host side of the guest's vsock, a hybrid Unix socket as Firecracker has it.
 *
 * A host client connects to the socket at --uds and writes one line "CONNECT <port>\n" (the
 * word in any case, a decimal u32, at most 32 bytes with the newline, within 2 s); conn.c then
 * asks the guest, and the client reads "OK <hostport>\n" followed by the byte stream, or sees
 * the socket closed when the guest refuses. The line is read a byte at a time so nothing after
 * the newline is consumed: the client may write its first data right behind it. At most
 * HOST_HANDSHAKES handshakes are in progress at once; more are closed.
 *
 * A guest connecting to host port P reaches whoever listens on "<uds>_<P>" (host_dial).
 *
 * Owns the listening socket and the connections still in their handshake; a finished one is
 * handed to conn.c. Loop thread only.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "transport.h"
#include "util.h"
#include "vsock.h"

#define HOST_HANDSHAKES	    64
#define HOST_HANDSHAKE_SECS 2

/* A host client that has not finished its CONNECT line. */
struct host_hs {
	LIST_ENTRY(host_hs) link;
	struct vsock *vs;
	int fd;
	struct event *ev, *timer;
	char line[HYBRID_LINE_MAX];
	size_t len;
};

static LIST_HEAD(, host_hs) host_hss = LIST_HEAD_INITIALIZER(host_hss);
static unsigned host_nhs;

/* Forget a handshake; its descriptor is closed unless it was handed on (fd < 0). */
static void
host_hs_free(struct host_hs *hs)
{
	LIST_REMOVE(hs, link);
	host_nhs--;
	event_free(hs->ev);
	event_free(hs->timer);
	if (hs->fd >= 0)
		close(hs->fd);
	free(hs);
}

/* Read the CONNECT line, a byte at a time, and hand the socket on once it is complete. */
static void
host_hs_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct host_hs *hs = arg;
	uint32_t port;

	(void)what;
	for (;;) {
		char ch;
		ssize_t n = recv(fd, &ch, 1, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			log_debug("host client left during its handshake");
			host_hs_free(hs);
			return;
		}
		if (ch == '\n')
			break;
		if (hs->len == sizeof hs->line - 1) {
			log_warn("host client's CONNECT line is too long");
			host_hs_free(hs);
			return;
		}
		hs->line[hs->len++] = ch;
	}
	if (hybrid_parse_connect(hs->line, hs->len, &port) < 0) {
		log_warn("host client sent a malformed CONNECT line");
		host_hs_free(hs);
		return;
	}
	conn_host_connect(hs->vs, steal_fd(&hs->fd), port);
	host_hs_free(hs);
}

static void
host_hs_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	log_warn("host client sent no CONNECT line in %d s", HOST_HANDSHAKE_SECS);
	host_hs_free(arg);
}

static void
host_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct timeval tv = {HOST_HANDSHAKE_SECS, 0};
	struct vsock *vs = arg;
	struct host_hs *hs;
	int fd;

	(void)what;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("accept: %s", strerror(errno));
		return;
	}
	if (host_nhs >= HOST_HANDSHAKES) {
		log_warn("%u handshakes in progress: refusing a host client", host_nhs);
		close(fd);
		return;
	}
	hs = xcalloc(1, sizeof *hs);
	hs->vs = vs;
	hs->fd = fd;
	hs->ev = event_new(vs->base, fd, EV_READ | EV_PERSIST, host_hs_read_cb, hs);
	hs->timer = evtimer_new(vs->base, host_hs_timeout_cb, hs);
	if (hs->ev == NULL || hs->timer == NULL || event_add(hs->ev, NULL) < 0 ||
	    evtimer_add(hs->timer, &tv) < 0)
		fatalx("handshake events");
	LIST_INSERT_HEAD(&host_hss, hs, link);
	host_nhs++;
}

int
host_listen(struct vsock *vs, struct status *st)
{
	vs->listen_ev =
	    event_new(vs->base, vs->listen_fd, EV_READ | EV_PERSIST, host_accept_cb, vs);
	if (vs->listen_ev == NULL || event_add(vs->listen_ev, NULL) < 0)
		return status_set(st, ST_INTERNAL, "hybrid socket event");
	return 0;
}

int
host_dial(const struct vsock *vs, uint32_t port)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int fd, n;

	n = snprintf(un.sun_path, sizeof un.sun_path, "%s_%u", vs->uds_path, port);
	if (n < 0 || (size_t)n >= sizeof un.sun_path)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A Unix connect completes at once, or fails (EAGAIN: the listener's backlog is full). */
	if (connect(fd, (struct sockaddr *)&un, sizeof un) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

void
host_free(struct vsock *vs)
{
	while (!LIST_EMPTY(&host_hss))
		host_hs_free(LIST_FIRST(&host_hss));
	if (vs->listen_ev != NULL)
		event_free(vs->listen_ev);
	vs->listen_ev = NULL;
	if (vs->listen_fd >= 0)
		close(vs->listen_fd);
	vs->listen_fd = -1;
}
