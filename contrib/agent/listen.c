/*
 * listen.c: the agent's listening sockets and the hybrid-vsock handshake (docs/PROTOCOL.md 1).
 *
 * Owns the listening descriptors and the connections still in their handshake. Runs on the
 * loop thread. The accept path never reads: an accepted descriptor is non-blocking and
 * O_CLOEXEC, and in --listen-uds mode it gets its own read event with a AGENT_HANDSHAKE_MS
 * deadline, so a silent or hostile client costs nobody else anything. The handshake line is
 * read with MSG_PEEK first and then consumed exactly up to its newline, so the bytes a client
 * sends right after the line (a ttrpc frame in the same write) stay in the socket for the
 * service. A finished handshake passes the descriptor to control_accept() or stream_accept(),
 * which own it from then on; a failed one is closed here, once.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "transport.h"
#include "util.h"

#define LISTEN_BACKLOG	128
#define LISTEN_PAUSE_MS 100

enum listen_kind {
	LISTEN_CONTROL,
	LISTEN_STREAM,
	LISTEN_HYBRID,
};

struct listener {
	int fd;
	enum listen_kind kind;
	struct event *ev;
	struct event *pause; /* out of descriptors: retry later instead of spinning */
};

struct handshake {
	LIST_ENTRY(handshake) entry;
	int fd;
	struct event *ev;
	char line[HYBRID_LINE_MAX];
	size_t len;
	int64_t deadline;
};

static struct listener listen_socks[2];
static unsigned listen_n;
static char *listen_uds_path;
static uint32_t listen_host_port = AGENT_HOST_PORT_BASE;
static LIST_HEAD(, handshake) listen_handshakes = LIST_HEAD_INITIALIZER(listen_handshakes);

/* Close a handshake that failed (or free the record of one that succeeded: fd = -1). */
static void
listen_handshake_free(struct handshake *h)
{
	LIST_REMOVE(h, entry);
	event_free(h->ev);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

/* The line is complete: answer OK and route, or close. */
static void
listen_handshake_route(struct handshake *h)
{
	char ok[32];
	uint32_t port;
	int n, fd;

	if (hybrid_parse_connect(h->line, h->len, &port) < 0) {
		log_warn("hybrid handshake on fd %d: malformed line: closing", h->fd);
		listen_handshake_free(h);
		return;
	}
	if (port != agent.control_port && port != agent.stream_port) {
		log_warn(
		    "hybrid handshake on fd %d: nothing listens on port %u: closing", h->fd, port);
		listen_handshake_free(h);
		return;
	}
	n = snprintf(ok, sizeof ok, "OK %u\n", listen_host_port++);
	if (send(h->fd, ok, (size_t)n, MSG_NOSIGNAL) != n) {
		log_warn("hybrid handshake on fd %d: answer: %s", h->fd, strerror(errno));
		listen_handshake_free(h);
		return;
	}
	fd = steal_fd(&h->fd);
	listen_handshake_free(h);
	if (port == agent.control_port)
		control_accept(fd);
	else
		stream_accept(fd);
}

/* Read what belongs to the line: peek, then consume no byte past the newline. */
static void
listen_handshake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct handshake *h = arg;
	char buf[HYBRID_LINE_MAX];
	struct timeval tv;
	int64_t left;
	size_t want;
	ssize_t n;
	char *nl;

	if (what & EV_TIMEOUT) {
		log_warn("hybrid handshake on fd %d: no line within %d ms: closing", h->fd,
		    AGENT_HANDSHAKE_MS);
		listen_handshake_free(h);
		return;
	}
	n = recv(h->fd, buf, sizeof buf - h->len, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		goto again;
	if (n <= 0) {
		log_debug("hybrid handshake on fd %d: peer went away", h->fd);
		listen_handshake_free(h);
		return;
	}
	nl = memchr(buf, '\n', (size_t)n);
	want = nl != NULL ? (size_t)(nl - buf) + 1 : (size_t)n;
	if (recv(h->fd, h->line + h->len, want, 0) != (ssize_t)want) {
		listen_handshake_free(h);
		return;
	}
	if (nl != NULL) {
		h->len += want - 1;
		listen_handshake_route(h);
		return;
	}
	h->len += want;
	if (h->len >= HYBRID_LINE_MAX) {
		log_warn("hybrid handshake on fd %d: no newline within %d bytes: closing", h->fd,
		    HYBRID_LINE_MAX);
		listen_handshake_free(h);
		return;
	}
again:
	left = h->deadline - time_mono_ms();
	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	event_add(h->ev, &tv);
}

/* Start the handshake of an accepted connection; the loop reads it. */
static void
listen_handshake_new(int fd)
{
	struct handshake *h = xcalloc(1, sizeof *h);
	struct timeval tv = {AGENT_HANDSHAKE_MS / 1000, (AGENT_HANDSHAKE_MS % 1000) * 1000};

	h->fd = fd;
	h->deadline = time_mono_ms() + AGENT_HANDSHAKE_MS;
	h->ev = event_new(agent.base, fd, EV_READ, listen_handshake_cb, h);
	LIST_INSERT_HEAD(&listen_handshakes, h, entry);
	event_add(h->ev, &tv);
}

/* Resume accepting after a pause (EMFILE and the like). */
static void
listen_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	event_add(l->ev, NULL);
}

/* Accept everything pending; never read here. */
static void
listen_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct timeval tv = {0, LISTEN_PAUSE_MS * 1000};
	int fd;

	for (;;) {
		fd = transport_accept(l->fd, true);
		if (fd == -EAGAIN || fd == -EWOULDBLOCK)
			return;
		if (fd == -EINTR || fd == -ECONNABORTED)
			continue;
		if (fd < 0) {
			log_error("accept: %s: pausing the listener for %d ms", strerror(-fd),
			    LISTEN_PAUSE_MS);
			event_del(l->ev);
			evtimer_add(l->pause, &tv);
			return;
		}
		switch (l->kind) {
		case LISTEN_HYBRID:
			listen_handshake_new(fd);
			break;
		case LISTEN_CONTROL:
			control_accept(fd);
			break;
		case LISTEN_STREAM:
			stream_accept(fd);
			break;
		}
	}
}

/* Watch one listening socket. */
static void
listen_add(int fd, enum listen_kind kind)
{
	struct listener *l = &listen_socks[listen_n++];

	l->fd = fd;
	l->kind = kind;
	l->ev = event_new(agent.base, fd, EV_READ | EV_PERSIST, listen_accept_cb, l);
	l->pause = evtimer_new(agent.base, listen_resume_cb, l);
	event_add(l->ev, NULL);
}

int
listen_vsock(uint32_t control_port, uint32_t stream_port, struct status *st)
{
	int fd;

	fd = transport_listen_vsock(control_port, LISTEN_BACKLOG, st);
	if (fd < 0)
		return status_wrap(st, "control port %u", control_port);
	listen_add(fd, LISTEN_CONTROL);
	fd = transport_listen_vsock(stream_port, LISTEN_BACKLOG, st);
	if (fd < 0)
		return status_wrap(st, "stream port %u", stream_port);
	listen_add(fd, LISTEN_STREAM);
	log_info(
	    "listening on vsock ports %u (control) and %u (streams)", control_port, stream_port);
	return 0;
}

int
listen_uds(const char *path, struct status *st)
{
	int fd;

	fd = transport_listen_unix(path, 0600, LISTEN_BACKLOG, st);
	if (fd < 0)
		return status_wrap(st, "listen on %s", path);
	listen_uds_path = xstrdup(path);
	listen_add(fd, LISTEN_HYBRID);
	log_info("listening on %s (hybrid vsock: control port %u, stream port %u)", path,
	    agent.control_port, agent.stream_port);
	return 0;
}

void
listen_close(void)
{
	struct handshake *h;
	unsigned i;

	for (i = 0; i < listen_n; i++) {
		event_free(listen_socks[i].ev);
		event_free(listen_socks[i].pause);
		close(listen_socks[i].fd);
	}
	listen_n = 0;
	while ((h = LIST_FIRST(&listen_handshakes)) != NULL)
		listen_handshake_free(h);
	if (listen_uds_path != NULL) {
		unlink(listen_uds_path);
		free(listen_uds_path);
		listen_uds_path = NULL;
	}
}
