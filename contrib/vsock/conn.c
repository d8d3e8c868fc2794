/*
 * conn.c: the vsock connections between the guest and host sockets, with credit accounting
 * and both data paths.
 *
 * A connection is the pair (host port, guest port) with the host socket it is bridged to. It
 * is created by a host client's CONNECT (state REQUEST until the guest answers RESPONSE) or by
 * the guest's REQUEST to a host port that host.c could dial (OPEN at once). The table is a
 * list of at most CONN_MAX entries, searched linearly.
 *
 * Guest to host: RW payloads are copied out of the tx chain into the connection's ring buffer
 * of CONN_BUF bytes and written to the host socket as it accepts them. We advertise CONN_BUF
 * as buf_alloc and the bytes written out as fwd_cnt, so a guest that respects its credit can
 * never overfill the buffer; one that does is reset. A CREDIT_UPDATE goes out once half the
 * buffer was written since the guest last heard our fwd_cnt (every packet we send carries it).
 *
 * Host to guest: nothing is buffered. When the host socket is readable, the connection has
 * credit (the guest's buf_alloc minus what is in flight) and the rx ring has a buffer, bytes
 * are read straight into the guest's buffer and the header is written in front. Without
 * credit, or without rx buffers, the read event is removed, so the host writer blocks; it is
 * added back on CREDIT_UPDATE or the rx kick.
 *
 * Control packets (REQUEST, RESPONSE, SHUTDOWN, CREDIT_*) are bits on the connection and the
 * connection sits on the pending list until they are sent, ahead of any data, by the flush
 * event. RSTs outlive their connection: they are queued on their own bounded list.
 *
 * Ending: a SHUTDOWN(SEND) from the guest becomes shutdown(SHUT_WR) on the host socket once
 * the buffer is written out; a host EOF becomes SHUTDOWN(SEND) to the guest. When the guest
 * has shut both directions, or both sides have ended sending, the host socket is closed and
 * the guest gets RST. A guest RST closes the host socket at once; a host socket error resets.
 *
 * Owns each connection, its host socket, events and buffer, and the RST list. Loop thread.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "vsock.h"

#define CONN_FIRST_HOST_PORT 1073741824u /* host ports given to host-initiated connections */
#define CONN_RST_MAX	     (CONN_MAX + 256)
#define CONN_REQUEST_SECS    30	 /* a guest that never answers a REQUEST */
#define CONN_TX_BATCH	     256 /* tx chains per loop turn */
#define CONN_READ_BATCH	     16	 /* rx packets per host read callback */

enum conn_state {
	CONN_REQUEST, /* host-initiated: REQUEST queued or sent, waiting for RESPONSE */
	CONN_OPEN,
};

/* Control packets waiting for an rx buffer, sent in this order. */
#define PEND_REQUEST	    0x01u
#define PEND_RESPONSE	    0x02u
#define PEND_SHUTDOWN	    0x04u
#define PEND_CREDIT_UPDATE  0x08u
#define PEND_CREDIT_REQUEST 0x10u

struct conn {
	TAILQ_ENTRY(conn) link;
	TAILQ_ENTRY(conn) pend_link;
	struct vsock *vs;
	uint32_t lport, pport; /* host side, guest side */
	enum conn_state state;
	unsigned pend;
	bool in_pending;
	uint32_t shut_flags; /* the SHUTDOWN flags we sent or will send */

	int fd;
	struct event *rev, *wev, *timer;
	bool reading;

	/* guest to host */
	uint8_t *buf; /* CONN_BUF bytes, allocated on the first payload */
	uint32_t head, fill;
	uint32_t fwd_cnt, fwd_cnt_sent;
	bool guest_no_send, guest_no_rcv, host_wr_shut;

	/* host to guest */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	bool host_eof, credit_requested;
};

/* A reset for a connection that is gone, or never was. */
struct conn_rst {
	TAILQ_ENTRY(conn_rst) link;
	uint32_t lport, pport;
};

static void conn_update_read(struct conn *c);
static int conn_host_flush(struct conn *c);

static struct conn *
conn_find(struct vsock *vs, uint32_t lport, uint32_t pport)
{
	struct conn *c;

	TAILQ_FOREACH (c, &vs->conns, link) {
		if (c->lport == lport && c->pport == pport)
			return c;
	}
	return NULL;
}

/* Queue a RST for (lport, pport); dropped (logged) when the list is full. */
static void
conn_queue_rst(struct vsock *vs, uint32_t lport, uint32_t pport)
{
	struct conn_rst *r;

	if (vs->nrsts >= CONN_RST_MAX) {
		log_warn("reset list full: RST to guest port %u dropped", pport);
		return;
	}
	r = xcalloc(1, sizeof *r);
	r->lport = lport;
	r->pport = pport;
	TAILQ_INSERT_TAIL(&vs->rsts, r, link);
	vs->nrsts++;
	event_active(vs->flush_ev, EV_TIMEOUT, 0);
}

/* Queue control packets on c. */
static void
conn_queue(struct conn *c, unsigned bits)
{
	c->pend |= bits;
	if (!c->in_pending) {
		TAILQ_INSERT_TAIL(&c->vs->pending, c, pend_link);
		c->in_pending = true;
	}
	event_active(c->vs->flush_ev, EV_TIMEOUT, 0);
}

/* Close the host socket, forget c; with `rst` the guest is told with a RST. */
static void
conn_close(struct conn *c, bool rst)
{
	struct vsock *vs = c->vs;

	log_debug("connection %u:%u closed%s", c->lport, c->pport, rst ? " with RST" : "");
	if (rst)
		conn_queue_rst(vs, c->lport, c->pport);
	if (c->in_pending)
		TAILQ_REMOVE(&vs->pending, c, pend_link);
	TAILQ_REMOVE(&vs->conns, c, link);
	vs->nconns--;
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

/* Bytes the guest can take now on c. */
static uint32_t
conn_credit(const struct conn *c)
{
	uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;

	return inflight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - inflight;
}

/* The header of a packet from the host end of c. */
static void
conn_hdr(struct conn *c, struct pkt_hdr *h, enum pkt_op op, uint32_t len, uint32_t flags)
{
	memset(h, 0, sizeof *h);
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = c->vs->guest_cid;
	h->src_port = c->lport;
	h->dst_port = c->pport;
	h->len = len;
	h->type = PKT_TYPE_STREAM;
	h->op = (uint16_t)op;
	h->flags = flags;
	h->buf_alloc = CONN_BUF;
	h->fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_sent = c->fwd_cnt;
}

/*
 * Put a header-only packet into the next rx buffer. 1 sent, 0 no buffer (the ring is
 * starved), -1 the ring is broken.
 */
static int
conn_send_hdr(struct vsock *vs, const struct pkt_hdr *h)
{
	struct virtq *q = &vs->vq[VQ_RX];
	uint8_t b[PKT_HDR_LEN];
	struct virtq_chain ch;

	for (;;) {
		switch (virtq_pop(q, &vs->mem, true, &ch)) {
		case VIRTQ_EMPTY:
			return 0;
		case VIRTQ_BROKEN:
			return -1;
		case VIRTQ_BAD:
			virtq_push(q, ch.head, 0);
			continue;
		case VIRTQ_CHAIN:
			break;
		}
		if (ch.len < PKT_HDR_LEN) {
			virtq_push(q, ch.head, 0);
			continue;
		}
		pkt_encode(h, b);
		virtq_chain_write(&ch, 0, b, sizeof b);
		virtq_push(q, ch.head, PKT_HDR_LEN);
		log_debug("-> %s %u:%u", pkt_op_name(h->op), h->src_port, h->dst_port);
		return 1;
	}
}

/* Mark the rx ring starved or fed, and update every connection's reading to match. */
static void
conn_set_starved(struct vsock *vs, bool starved)
{
	struct conn *c;

	if (vs->rx_starved == starved)
		return;
	vs->rx_starved = starved;
	TAILQ_FOREACH (c, &vs->conns, link)
		conn_update_read(c);
}

/* Send queued control packets while the rx ring has buffers: resets first, then the rest. */
static void
conn_flush(struct vsock *vs)
{
	struct pkt_hdr h;
	int r = 1;

	if (!vu_running(vs))
		return;
	while (r > 0 && !TAILQ_EMPTY(&vs->rsts)) {
		struct conn_rst *rst = TAILQ_FIRST(&vs->rsts);
		memset(&h, 0, sizeof h);
		h.src_cid = VSOCK_HOST_CID;
		h.dst_cid = vs->guest_cid;
		h.src_port = rst->lport;
		h.dst_port = rst->pport;
		h.type = PKT_TYPE_STREAM;
		h.op = PKT_OP_RST;
		if ((r = conn_send_hdr(vs, &h)) > 0) {
			TAILQ_REMOVE(&vs->rsts, rst, link);
			vs->nrsts--;
			free(rst);
		}
	}
	while (r > 0 && !TAILQ_EMPTY(&vs->pending)) {
		struct conn *c = TAILQ_FIRST(&vs->pending);
		unsigned bit = c->pend & -c->pend; /* lowest: the order of the PEND_ bits */
		enum pkt_op op = bit == PEND_REQUEST	     ? PKT_OP_REQUEST
				 : bit == PEND_RESPONSE	     ? PKT_OP_RESPONSE
				 : bit == PEND_SHUTDOWN	     ? PKT_OP_SHUTDOWN
				 : bit == PEND_CREDIT_UPDATE ? PKT_OP_CREDIT_UPDATE
							     : PKT_OP_CREDIT_REQUEST;

		if (bit == 0) {
			TAILQ_REMOVE(&vs->pending, c, pend_link);
			c->in_pending = false;
			continue;
		}
		conn_hdr(c, &h, op, 0, op == PKT_OP_SHUTDOWN ? c->shut_flags : 0);
		if ((r = conn_send_hdr(vs, &h)) > 0)
			c->pend &= ~bit;
	}
	virtq_notify(&vs->vq[VQ_RX]);
	if (r == 0)
		conn_set_starved(vs, true);
}

static void
conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_flush(arg);
}

/* Add or remove c's read event to match whether host bytes may flow to the guest now. */
static void
conn_update_read(struct conn *c)
{
	bool want = c->state == CONN_OPEN && c->fd >= 0 && !c->host_eof && !c->guest_no_rcv &&
		    !c->vs->rx_starved && vu_running(c->vs) && conn_credit(c) > 0;

	if (want == c->reading)
		return;
	if (want ? event_add(c->rev, NULL) : event_del(c->rev))
		fatalx("read event");
	c->reading = want;
}

/* Close c when both directions are over and its buffer is written out. */
static bool
conn_maybe_done(struct conn *c)
{
	if (c->fill != 0 || !c->guest_no_send)
		return false;
	if (c->guest_no_rcv || c->host_eof) {
		conn_close(c, true);
		return true;
	}
	return false;
}

/* The host socket is readable: move what fits into the guest's rx buffers. */
static void
conn_host_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct vsock *vs = c->vs;
	struct virtq *q = &vs->vq[VQ_RX];
	struct iovec iov[VIRTQ_MAX_SEGS];
	struct virtq_chain ch;
	uint8_t b[PKT_HDR_LEN];
	struct pkt_hdr h;

	(void)what;
	for (int i = 0; i < CONN_READ_BATCH; i++) {
		uint32_t credit = conn_credit(c), max;
		ssize_t n;
		int niov;

		/* Control packets go first: they may be what frees the other side. */
		if (!TAILQ_EMPTY(&vs->pending) || !TAILQ_EMPTY(&vs->rsts))
			conn_flush(vs);
		if (vs->rx_starved || !c->reading)
			break;
		if (credit == 0) {
			if (!c->credit_requested) {
				c->credit_requested = true;
				conn_queue(c, PEND_CREDIT_REQUEST);
			}
			conn_update_read(c);
			break;
		}
		switch (virtq_pop(q, &vs->mem, true, &ch)) {
		case VIRTQ_EMPTY:
			virtq_notify(q);
			conn_set_starved(vs, true);
			return;
		case VIRTQ_BROKEN:
			virtq_notify(q);
			return;
		case VIRTQ_BAD:
			virtq_push(q, ch.head, 0);
			continue;
		case VIRTQ_CHAIN:
			break;
		}
		if (ch.len <= PKT_HDR_LEN) {
			virtq_push(q, ch.head, 0);
			continue;
		}
		max = ch.len - PKT_HDR_LEN < credit ? (uint32_t)(ch.len - PKT_HDR_LEN) : credit;
		if (max > PKT_MAX_PAYLOAD)
			max = PKT_MAX_PAYLOAD;
		niov = virtq_chain_iov(&ch, PKT_HDR_LEN, max, iov, VIRTQ_MAX_SEGS);
		n = readv(fd, iov, niov);
		if (n <= 0) {
			virtq_unpop(q);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n < 0) {
				log_warn("connection %u:%u: read: %s", c->lport, c->pport,
				    strerror(errno));
				virtq_notify(q);
				conn_close(c, true);
				return;
			}
			/* EOF: the host will send no more. */
			c->host_eof = true;
			c->shut_flags |= PKT_SHUTDOWN_SEND;
			conn_queue(c, PEND_SHUTDOWN);
			conn_update_read(c);
			virtq_notify(q);
			conn_maybe_done(c);
			return;
		}
		conn_hdr(c, &h, PKT_OP_RW, (uint32_t)n, 0);
		pkt_encode(&h, b);
		virtq_chain_write(&ch, 0, b, sizeof b);
		c->tx_cnt += (uint32_t)n;
		virtq_push(q, ch.head, PKT_HDR_LEN + (uint32_t)n);
	}
	virtq_notify(q);
}

/* Write what the buffer holds to the host socket. 0, or -1 when c was closed. */
static int
conn_host_flush(struct conn *c)
{
	while (c->fill > 0) {
		struct iovec iov[2];
		int niov = 1;
		ssize_t n;

		iov[0].iov_base = c->buf + c->head;
		iov[0].iov_len = c->head + c->fill <= CONN_BUF ? c->fill : CONN_BUF - c->head;
		if (iov[0].iov_len < c->fill) {
			iov[1].iov_base = c->buf;
			iov[1].iov_len = c->fill - iov[0].iov_len;
			niov = 2;
		}
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};

		/* No SIGPIPE when the host client is gone: that is EPIPE, and a reset. */
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			log_debug("connection %u:%u: write: %s", c->lport, c->pport,
			    n < 0 ? strerror(errno) : "nothing written");
			conn_close(c, true);
			return -1;
		}
		c->head = (uint32_t)((c->head + (size_t)n) % CONN_BUF);
		c->fill -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (c->fill > 0) {
		if (event_add(c->wev, NULL) < 0)
			fatalx("write event");
	} else {
		event_del(c->wev);
		if (c->guest_no_send && !c->host_wr_shut) {
			c->host_wr_shut = true;
			if (shutdown(c->fd, SHUT_WR) < 0)
				log_debug("shutdown: %s", strerror(errno));
		}
	}
	if (c->fwd_cnt - c->fwd_cnt_sent >= CONN_BUF / 2 && !c->guest_no_send)
		conn_queue(c, PEND_CREDIT_UPDATE);
	return conn_maybe_done(c) ? -1 : 0;
}

static void
conn_host_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_host_flush(arg);
}

/* The guest never answered a host client's REQUEST. */
static void
conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	log_warn("guest port %u did not answer a connection request", c->pport);
	conn_close(c, true);
}

/* A new connection on host socket fd (ownership passes to it). */
static struct conn *
conn_new(struct vsock *vs, int fd, uint32_t lport, uint32_t pport, enum conn_state state)
{
	struct conn *c = xcalloc(1, sizeof *c);

	c->vs = vs;
	c->fd = fd;
	c->lport = lport;
	c->pport = pport;
	c->state = state;
	c->rev = event_new(vs->base, fd, EV_READ | EV_PERSIST, conn_host_read_cb, c);
	c->wev = event_new(vs->base, fd, EV_WRITE | EV_PERSIST, conn_host_write_cb, c);
	c->timer = evtimer_new(vs->base, conn_timeout_cb, c);
	if (c->rev == NULL || c->wev == NULL || c->timer == NULL)
		fatalx("connection events");
	TAILQ_INSERT_TAIL(&vs->conns, c, link);
	vs->nconns++;
	return c;
}

void
conn_host_connect(struct vsock *vs, int fd, uint32_t port)
{
	struct timeval tv = {CONN_REQUEST_SECS, 0};
	struct conn *c;
	uint32_t lport;

	if (vs->nconns >= CONN_MAX) {
		log_warn("%u connections: refusing a host connection to port %u", vs->nconns, port);
		close(fd);
		return;
	}
	do {
		lport = vs->next_port++;
		if (vs->next_port < CONN_FIRST_HOST_PORT)
			vs->next_port = CONN_FIRST_HOST_PORT;
	} while (conn_find(vs, lport, port) != NULL);
	c = conn_new(vs, fd, lport, port, CONN_REQUEST);
	evtimer_add(c->timer, &tv);
	conn_queue(c, PEND_REQUEST);
	log_debug("host connection %u to guest port %u", lport, port);
}

/* The guest's REQUEST for host port h->dst_port. */
static void
conn_guest_request(struct vsock *vs, const struct pkt_hdr *h)
{
	struct conn *c;
	int fd;

	if (vs->nconns >= CONN_MAX) {
		log_warn("%u connections: refusing the guest's request for port %u", vs->nconns,
		    h->dst_port);
		conn_queue_rst(vs, h->dst_port, h->src_port);
		return;
	}
	if ((fd = host_dial(vs, h->dst_port)) < 0) {
		log_debug("guest request for host port %u: %s", h->dst_port, strerror(-fd));
		conn_queue_rst(vs, h->dst_port, h->src_port);
		return;
	}
	c = conn_new(vs, fd, h->dst_port, h->src_port, CONN_OPEN);
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	conn_queue(c, PEND_RESPONSE);
	conn_update_read(c);
}

/* The guest answered a host client's REQUEST: tell the client, start the flow. */
static void
conn_guest_response(struct conn *c)
{
	char line[32];
	int len;
	ssize_t n;

	if (c->state != CONN_REQUEST) {
		conn_close(c, true);
		return;
	}
	len = snprintf(line, sizeof line, "OK %u\n", c->lport);
	/* A fresh socket's buffer takes a few bytes: a short write means the client is broken. */
	n = send(c->fd, line, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != len) {
		conn_close(c, true);
		return;
	}
	evtimer_del(c->timer);
	c->state = CONN_OPEN;
	conn_update_read(c);
}

/* RW from the guest: append to the buffer and write what the host takes. */
static void
conn_guest_rw(struct conn *c, const struct pkt_hdr *h, const struct virtq_chain *ch)
{
	uint32_t tail, first;

	if (c->state != CONN_OPEN || c->guest_no_send || h->len > CONN_BUF - c->fill) {
		log_warn("connection %u:%u: %u bytes beyond the guest's credit or after its "
			 "shutdown: reset",
		    c->lport, c->pport, h->len);
		conn_close(c, true);
		return;
	}
	if (h->len == 0)
		return;
	if (c->buf == NULL)
		c->buf = xmalloc(CONN_BUF);
	tail = (c->head + c->fill) % CONN_BUF;
	first = CONN_BUF - tail < h->len ? CONN_BUF - tail : h->len;
	virtq_chain_read(ch, PKT_HDR_LEN, c->buf + tail, first);
	virtq_chain_read(ch, PKT_HDR_LEN + first, c->buf, h->len - first);
	c->fill += h->len;
	conn_host_flush(c);
}

void
conn_guest_packet(struct vsock *vs, const struct pkt_hdr *h, const struct virtq_chain *ch)
{
	struct conn *c = conn_find(vs, h->dst_port, h->src_port);

	log_debug("<- %s %u:%u len %u", pkt_op_name(h->op), h->src_port, h->dst_port, h->len);
	if (h->op == PKT_OP_REQUEST) {
		if (c != NULL) {
			log_warn("guest port %u asked again for a connection it has", h->src_port);
			conn_close(c, true);
			return;
		}
		conn_guest_request(vs, h);
		return;
	}
	if (c == NULL) {
		if (h->op != PKT_OP_RST)
			conn_queue_rst(vs, h->dst_port, h->src_port);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (conn_credit(c) > 0)
		c->credit_requested = false;

	switch (h->op) {
	case PKT_OP_RESPONSE:
		conn_guest_response(c);
		return;
	case PKT_OP_RST:
		conn_close(c, false);
		return;
	case PKT_OP_SHUTDOWN:
		if ((h->flags & PKT_SHUTDOWN_RCV) != 0)
			c->guest_no_rcv = true;
		if ((h->flags & PKT_SHUTDOWN_SEND) != 0)
			c->guest_no_send = true;
		if (conn_host_flush(c) < 0)
			return;
		break;
	case PKT_OP_RW:
		conn_guest_rw(c, h, ch);
		return;
	case PKT_OP_CREDIT_REQUEST:
		conn_queue(c, PEND_CREDIT_UPDATE);
		break;
	default: /* CREDIT_UPDATE: the credit was taken above */
		break;
	}
	conn_update_read(c);
}

void
conn_tx_kick(struct vsock *vs)
{
	struct virtq *q = &vs->vq[VQ_TX];
	struct virtq_chain ch;
	uint8_t b[PKT_HDR_LEN];
	struct pkt_hdr h;
	int i;

	for (i = 0; i < CONN_TX_BATCH; i++) {
		const char *why;

		switch (virtq_pop(q, &vs->mem, false, &ch)) {
		case VIRTQ_EMPTY:
		case VIRTQ_BROKEN:
			goto out;
		case VIRTQ_BAD:
			log_warn("malformed tx descriptor chain dropped");
			virtq_push(q, ch.head, 0);
			continue;
		case VIRTQ_CHAIN:
			break;
		}
		if (virtq_chain_read(&ch, 0, b, sizeof b) < sizeof b) {
			log_warn("tx chain shorter than a header dropped");
			virtq_push(q, ch.head, 0);
			continue;
		}
		pkt_decode(b, &h);
		if ((why = pkt_check(&h, vs->guest_cid, ch.len)) != NULL) {
			struct conn *c = conn_find(vs, h.dst_port, h.src_port);
			log_warn("malformed packet %s %u:%u: %s", pkt_op_name(h.op), h.src_port,
			    h.dst_port, why);
			if (c != NULL)
				conn_close(c, h.op != PKT_OP_RST);
			else if (h.op != PKT_OP_RST)
				conn_queue_rst(vs, h.dst_port, h.src_port);
		} else {
			conn_guest_packet(vs, &h, &ch);
		}
		virtq_push(q, ch.head, 0);
	}
out:
	virtq_notify(q);
	if (i == CONN_TX_BATCH)
		event_active(vs->tx_again, EV_TIMEOUT, 0);
}

static void
conn_tx_again_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_tx_kick(arg);
}

void
conn_rx_kick(struct vsock *vs)
{
	struct conn *c;

	vs->rx_starved = false;
	conn_flush(vs);
	TAILQ_FOREACH (c, &vs->conns, link)
		conn_update_read(c);
}

void
conn_init(struct vsock *vs)
{
	TAILQ_INIT(&vs->conns);
	TAILQ_INIT(&vs->pending);
	TAILQ_INIT(&vs->rsts);
	vs->next_port = CONN_FIRST_HOST_PORT;
	vs->flush_ev = event_new(vs->base, -1, 0, conn_flush_cb, vs);
	vs->tx_again = event_new(vs->base, -1, 0, conn_tx_again_cb, vs);
	if (vs->flush_ev == NULL || vs->tx_again == NULL)
		fatalx("connection table events");
}

void
conn_reset_all(struct vsock *vs)
{
	struct conn_rst *r;

	if (vs->nconns > 0)
		log_info("device stopped: closing %u connections", vs->nconns);
	while (!TAILQ_EMPTY(&vs->conns))
		conn_close(TAILQ_FIRST(&vs->conns), false);
	while ((r = TAILQ_FIRST(&vs->rsts)) != NULL) {
		TAILQ_REMOVE(&vs->rsts, r, link);
		free(r);
	}
	vs->nrsts = 0;
	vs->rx_starved = false;
}

void
conn_free_all(struct vsock *vs)
{
	conn_reset_all(vs);
	if (vs->flush_ev != NULL)
		event_free(vs->flush_ev);
	if (vs->tx_again != NULL)
		event_free(vs->tx_again);
	vs->flush_ev = vs->tx_again = NULL;
}
