/*
 * vhost-user.c: the back-end side of the vhost-user protocol, as QEMU's vhost-user-vsock-pci
 * device drives it.
 *
 * We listen; QEMU connects once at start-up (it does not reconnect, so when it goes away the
 * device is gone and the loop ends). Each message is a 12-byte header (request, flags with
 * the version and reply bits, payload size) and a payload; descriptors ride along with
 * SCM_RIGHTS. The socket is non-blocking: bytes and descriptors are gathered until a whole
 * message is in, so the loop never waits on QEMU. Replies are small and go out with one send.
 *
 * What we offer: VIRTIO_F_VERSION_1 and VHOST_USER_F_PROTOCOL_FEATURES; protocol features
 * CONFIG (the guest CID is read with GET_CONFIG) and REPLY_ACK. No indirect descriptors, no
 * event index, no multiqueue. With protocol features negotiated a ring starts disabled and
 * SET_VRING_ENABLE turns it on. SET_MEM_TABLE maps every region (its fd is closed once
 * mapped); ring addresses are re-translated on each new table. GET_VRING_BASE stops the ring
 * and answers where it stopped; stopping rx or tx drops every connection, since nothing can
 * flow until the driver starts the device again.
 *
 * A message that is malformed (bad size, bad index) is a protocol error and ends the session:
 * QEMU is trusted more than the guest, but never to be well-formed.
 *
 * Owns: the front-end socket and its event, the mappings (struct gmem), each queue's kick,
 * call and err eventfds and the kick events. Loop thread only.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "vsock.h"

enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
};

#define VU_VERSION	   0x1u
#define VU_FLAG_REPLY	   0x4u
#define VU_FLAG_NEED_REPLY 0x8u
#define VU_HDR_LEN	   12
#define VU_MAX_PAYLOAD	   4096
#define VU_MAX_FDS	   8
#define VU_VRING_NOFD	   0x100u /* SET_VRING_KICK/CALL/ERR: no descriptor sent */
#define VU_CONFIG_HDR	   12
#define VU_CONFIG_MAX	   256

#define VIRTIO_F_VERSION_1	       32
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VU_PROTOCOL_F_REPLY_ACK	       3
#define VU_PROTOCOL_F_CONFIG	       9

static const uint64_t vu_features =
    (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
static const uint64_t vu_protocol_features =
    (1ull << VU_PROTOCOL_F_REPLY_ACK) | (1ull << VU_PROTOCOL_F_CONFIG);

/* One message being received: the header, the payload, the descriptors that came with it. */
static struct {
	uint8_t buf[VU_HDR_LEN + VU_MAX_PAYLOAD];
	size_t have;
	int fds[VU_MAX_FDS];
	unsigned nfds;
} vu_in;

static uint32_t
vu_u32(const uint8_t *b)
{
	uint32_t v;

	memcpy(&v, b, sizeof v);
	return v;
}

static uint64_t
vu_u64(const uint8_t *b)
{
	uint64_t v;

	memcpy(&v, b, sizeof v);
	return v;
}

/* Close the descriptors of the current message that no handler took. */
static void
vu_close_fds(void)
{
	for (unsigned i = 0; i < vu_in.nfds; i++) {
		if (vu_in.fds[i] >= 0)
			close(vu_in.fds[i]);
	}
	vu_in.nfds = 0;
}

/* Take descriptor i of the current message (the caller owns it), -1 if none. */
static int
vu_take_fd(unsigned i)
{
	int fd;

	if (i >= vu_in.nfds)
		return -1;
	fd = vu_in.fds[i];
	vu_in.fds[i] = -1;
	return fd;
}

/* Send a reply to `req` with `len` payload bytes. 0 or -1. */
static int
vu_reply(struct vsock *vs, uint32_t req, const void *payload, uint32_t len)
{
	uint8_t out[VU_HDR_LEN + VU_CONFIG_HDR + VU_CONFIG_MAX];
	uint32_t flags = VU_VERSION | VU_FLAG_REPLY;
	ssize_t n;

	if (len > sizeof out - VU_HDR_LEN)
		fatalx("reply of %u bytes", len);
	memcpy(out, &req, 4);
	memcpy(out + 4, &flags, 4);
	memcpy(out + 8, &len, 4);
	memcpy(out + VU_HDR_LEN, payload, len);
	do
		n = send(vs->vu_fd, out, VU_HDR_LEN + len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(VU_HDR_LEN + len)) {
		log_error("reply to request %u: %s", req, n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

static int
vu_reply_u64(struct vsock *vs, uint32_t req, uint64_t v)
{
	return vu_reply(vs, req, &v, sizeof v);
}

/* Stop the kick event of a queue and close its kick descriptor. */
static void
vu_stop_kick(struct virtq *q)
{
	if (q->kick_ev != NULL) {
		event_free(q->kick_ev);
		q->kick_ev = NULL;
	}
	if (q->kick_fd >= 0) {
		close(q->kick_fd);
		q->kick_fd = -1;
	}
}

/* Forget a queue's whole set-up (descriptors closed). */
static void
vu_reset_queue(struct virtq *q)
{
	vu_stop_kick(q);
	if (q->call_fd >= 0)
		close(q->call_fd);
	if (q->err_fd >= 0)
		close(q->err_fd);
	memset(q, 0, sizeof *q);
	q->kick_fd = q->call_fd = q->err_fd = -1;
}

bool
vu_running(const struct vsock *vs)
{
	return virtq_ready(&vs->vq[VQ_RX]) && virtq_ready(&vs->vq[VQ_TX]) &&
	       vs->vq[VQ_RX].kick_fd >= 0 && vs->vq[VQ_TX].kick_fd >= 0;
}

/* A queue's kick eventfd fired: drain it and process the queue it belongs to. */
static void
vu_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vsock *vs = arg;
	uint64_t v;

	(void)what;
	if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
		log_warn("kick eventfd: %s", strerror(errno));
	if (fd == vs->vq[VQ_TX].kick_fd)
		conn_tx_kick(vs);
	else if (fd == vs->vq[VQ_RX].kick_fd)
		conn_rx_kick(vs);
	/* The event queue: we never send events, its buffers stay with us. */
}

/* The front-end's socket is readable: gather a message and handle it when complete. */
static void vu_read_cb(evutil_socket_t fd, short what, void *arg);

/* Map each region of a SET_MEM_TABLE payload with its descriptor. 0 or -1. */
static int
vu_set_mem_table(struct vsock *vs, const uint8_t *p, uint32_t size)
{
	struct gmem m = {0};
	uint32_t n;

	if (size < 8)
		return -1;
	n = vu_u32(p);
	if (n == 0 || n > GMEM_MAX_REGIONS || size != 8 + 32 * n || vu_in.nfds != n) {
		log_error(
		    "SET_MEM_TABLE: %u regions, %u bytes, %u descriptors", n, size, vu_in.nfds);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *r = p + 8 + 32 * i;
		struct gmem_region *g = &m.r[i];
		uint64_t off = vu_u64(r + 24);
		void *map;

		g->gpa = vu_u64(r);
		g->size = vu_u64(r + 8);
		g->uva = vu_u64(r + 16);
		if (g->size == 0 || g->gpa + g->size < g->gpa || g->uva + g->size < g->uva ||
		    off + g->size < off || off + g->size > SIZE_MAX) {
			log_error("SET_MEM_TABLE: region %u is malformed", i);
			gmem_clear(&m);
			return -1;
		}
		map = mmap(NULL, (size_t)(off + g->size), PROT_READ | PROT_WRITE, MAP_SHARED,
		    vu_in.fds[i], 0);
		if (map == MAP_FAILED) {
			log_error("SET_MEM_TABLE: mmap region %u: %s", i, strerror(errno));
			gmem_clear(&m);
			return -1;
		}
		g->map = map;
		g->map_len = (size_t)(off + g->size);
		g->host = (uint8_t *)map + off;
		m.n = i + 1;
	}
	vu_close_fds();
	gmem_clear(&vs->mem);
	vs->mem = m;
	for (unsigned i = 0; i < VQ_COUNT; i++) {
		if (virtq_map(&vs->vq[i], &vs->mem) < 0) {
			log_error("queue %u is not inside the new memory table", i);
			vs->vq[i].broken = true;
		}
	}
	log_info("memory table: %u regions", n);
	return 0;
}

/* The queue a vring message names (index in the low byte), or NULL. */
static struct virtq *
vu_queue(struct vsock *vs, uint32_t index)
{
	if (index >= VQ_COUNT) {
		log_error("queue index %u out of range", index);
		return NULL;
	}
	return &vs->vq[index];
}

/* SET_VRING_KICK/CALL/ERR: the u64 carries the index and a no-descriptor bit. */
static int
vu_set_vring_fd(struct vsock *vs, uint32_t req, const uint8_t *p, uint32_t size)
{
	struct virtq *q;
	uint64_t v;
	int fd, *slot;

	if (size != 8)
		return -1;
	v = vu_u64(p);
	if ((q = vu_queue(vs, (uint32_t)(v & 0xff))) == NULL)
		return -1;
	fd = (v & VU_VRING_NOFD) != 0 ? -1 : vu_take_fd(0);
	if ((v & VU_VRING_NOFD) == 0 && fd < 0) {
		log_error("vring descriptor message without a descriptor");
		return -1;
	}
	/* The loop must never wait on an eventfd (QEMU makes them non-blocking too). */
	if (fd >= 0 && fd_set_nonblock(fd, true) < 0) {
		close(fd);
		return -1;
	}
	if (req == VU_SET_VRING_KICK) {
		vu_stop_kick(q);
		q->kick_fd = fd;
		if (fd < 0) {
			log_error("queue %u: polling mode is not supported", (unsigned)(v & 0xff));
			return 0;
		}
		q->kick_ev = event_new(vs->base, fd, EV_READ | EV_PERSIST, vu_kick_cb, vs);
		if (q->kick_ev == NULL || event_add(q->kick_ev, NULL) < 0)
			fatalx("kick event");
		/* Without protocol features a ring starts on its kick. */
		if ((vs->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) == 0)
			q->enabled = true;
		q->broken = false;
		/* Buffers the driver added before the kick existed are waiting. */
		event_active(q->kick_ev, EV_READ, 0);
		return 0;
	}
	slot = req == VU_SET_VRING_CALL ? &q->call_fd : &q->err_fd;
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
	return 0;
}

/* Handle one complete message. 0, or -1 on a protocol error (the session ends). */
static int
vu_handle(struct vsock *vs, uint32_t req, uint32_t flags, const uint8_t *p, uint32_t size)
{
	struct virtq *q;
	bool replied = false;
	int r = 0;

	switch (req) {
	case VU_GET_FEATURES:
		r = vu_reply_u64(vs, req, vu_features);
		replied = true;
		break;
	case VU_SET_FEATURES:
		if (size != 8)
			return -1;
		vs->features = vu_u64(p) & vu_features;
		if (vs->features != vu_u64(p))
			log_warn("front-end set features we did not offer: %#llx",
			    (unsigned long long)vu_u64(p));
		break;
	case VU_GET_PROTOCOL_FEATURES:
		r = vu_reply_u64(vs, req, vu_protocol_features);
		replied = true;
		break;
	case VU_SET_PROTOCOL_FEATURES:
		if (size != 8)
			return -1;
		vs->protocol_features = vu_u64(p) & vu_protocol_features;
		break;
	case VU_GET_QUEUE_NUM:
		r = vu_reply_u64(vs, req, VQ_COUNT);
		replied = true;
		break;
	case VU_SET_OWNER:
		break;
	case VU_RESET_OWNER:
		conn_reset_all(vs);
		for (unsigned i = 0; i < VQ_COUNT; i++)
			vu_reset_queue(&vs->vq[i]);
		vs->features = 0;
		break;
	case VU_SET_MEM_TABLE:
		r = vu_set_mem_table(vs, p, size);
		break;
	case VU_SET_VRING_NUM:
	case VU_SET_VRING_BASE:
	case VU_SET_VRING_ENABLE: {
		uint32_t idx, num;
		if (size != 8)
			return -1;
		idx = vu_u32(p);
		num = vu_u32(p + 4);
		if ((q = vu_queue(vs, idx)) == NULL)
			return -1;
		if (req == VU_SET_VRING_NUM) {
			if (num == 0 || num > VIRTQ_MAX_NUM || (num & (num - 1)) != 0) {
				log_error("queue %u: size %u", idx, num);
				return -1;
			}
			q->num = num;
			if (virtq_map(q, &vs->mem) < 0)
				q->broken = true;
		} else if (req == VU_SET_VRING_BASE) {
			if (num > UINT16_MAX)
				return -1;
			q->last_avail = q->last_used = (uint16_t)num;
		} else {
			q->enabled = num != 0;
			if (q->enabled && q->kick_ev != NULL)
				event_active(q->kick_ev, EV_READ, 0);
			/* Both packet rings up: what waited for the device can go now. */
			if (vu_running(vs))
				conn_rx_kick(vs);
		}
		break;
	}
	case VU_SET_VRING_ADDR: {
		uint32_t idx;
		if (size != 40)
			return -1;
		idx = vu_u32(p);
		if ((q = vu_queue(vs, idx)) == NULL)
			return -1;
		q->desc_uva = vu_u64(p + 8);
		q->used_uva = vu_u64(p + 16);
		q->avail_uva = vu_u64(p + 24);
		if (virtq_map(q, &vs->mem) < 0) {
			log_error("queue %u: rings are not inside guest memory", idx);
			return -1;
		}
		break;
	}
	case VU_GET_VRING_BASE: {
		uint32_t out[2];
		if (size != 8)
			return -1;
		if ((q = vu_queue(vs, vu_u32(p))) == NULL)
			return -1;
		vu_stop_kick(q);
		q->enabled = false;
		out[0] = vu_u32(p);
		out[1] = q->last_avail;
		if (out[0] == VQ_RX || out[0] == VQ_TX)
			conn_reset_all(vs);
		r = vu_reply(vs, req, out, sizeof out);
		replied = true;
		break;
	}
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		r = vu_set_vring_fd(vs, req, p, size);
		break;
	case VU_GET_CONFIG: {
		uint8_t out[VU_CONFIG_HDR + VU_CONFIG_MAX] = {0};
		uint64_t cid = htole64(vs->guest_cid);
		uint32_t off, len;
		if (size < VU_CONFIG_HDR)
			return -1;
		off = vu_u32(p);
		len = vu_u32(p + 4);
		if (len > VU_CONFIG_MAX || size != VU_CONFIG_HDR + len)
			return -1;
		memcpy(out, p, VU_CONFIG_HDR);
		/* The config space is the 8-byte guest CID; reads past it are zeros. */
		if (off < sizeof cid)
			memcpy(out + VU_CONFIG_HDR, (uint8_t *)&cid + off,
			    len < sizeof cid - off ? len : sizeof cid - off);
		r = vu_reply(vs, req, out, VU_CONFIG_HDR + len);
		replied = true;
		break;
	}
	case VU_SET_CONFIG:
		log_warn("SET_CONFIG ignored: the config space is read-only");
		break;
	default:
		log_warn("request %u not supported", req);
		if ((flags & VU_FLAG_NEED_REPLY) != 0 &&
		    (vs->protocol_features & (1ull << VU_PROTOCOL_F_REPLY_ACK)) != 0)
			return vu_reply_u64(vs, req, 1);
		return 0;
	}
	if (r == 0 && !replied && (flags & VU_FLAG_NEED_REPLY) != 0 &&
	    (vs->protocol_features & (1ull << VU_PROTOCOL_F_REPLY_ACK)) != 0)
		r = vu_reply_u64(vs, req, 0);
	return r;
}

/* The session is over (QEMU left or broke the protocol): end the loop. */
static void
vu_end(struct vsock *vs)
{
	event_base_loopexit(vs->base, NULL);
	if (vs->vu_ev != NULL) {
		event_free(vs->vu_ev);
		vs->vu_ev = NULL;
	}
}

static void
vu_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vsock *vs = arg;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
	} cbuf;
	uint32_t req, flags, size;
	size_t want;
	ssize_t n;

	(void)what;
	want = VU_HDR_LEN;
	if (vu_in.have >= VU_HDR_LEN)
		want = VU_HDR_LEN + vu_u32(vu_in.buf + 8);
	{
		struct iovec iov = {vu_in.buf + vu_in.have, want - vu_in.have};
		struct msghdr mh = {.msg_iov = &iov,
		    .msg_iovlen = 1,
		    .msg_control = cbuf.buf,
		    .msg_controllen = sizeof cbuf.buf};
		struct cmsghdr *c;

		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		for (c = CMSG_FIRSTHDR(&mh); n >= 0 && c != NULL; c = CMSG_NXTHDR(&mh, c)) {
			size_t k;
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int nfd;
				memcpy(&nfd, CMSG_DATA(c) + i * sizeof(int), sizeof nfd);
				if (vu_in.nfds < VU_MAX_FDS)
					vu_in.fds[vu_in.nfds++] = nfd;
				else
					close(nfd);
			}
		}
		if (n <= 0) {
			if (n < 0)
				log_error("front-end socket: %s", strerror(errno));
			else
				log_info("front-end disconnected");
			vu_close_fds();
			vu_end(vs);
			return;
		}
		if ((mh.msg_flags & MSG_CTRUNC) != 0)
			log_warn("descriptors were cut from a message");
	}
	vu_in.have += (size_t)n;
	if (vu_in.have < VU_HDR_LEN)
		return;
	size = vu_u32(vu_in.buf + 8);
	if (size > VU_MAX_PAYLOAD) {
		log_error("message of %u bytes", size);
		vu_close_fds();
		vu_end(vs);
		return;
	}
	if (vu_in.have < VU_HDR_LEN + size)
		return;
	req = vu_u32(vu_in.buf);
	flags = vu_u32(vu_in.buf + 4);
	vu_in.have = 0;
	log_debug("request %u flags %#x size %u fds %u", req, flags, size, vu_in.nfds);
	if ((flags & 0x3) != VU_VERSION ||
	    vu_handle(vs, req, flags, vu_in.buf + VU_HDR_LEN, size) < 0) {
		log_error("protocol error on request %u: ending the session", req);
		vu_close_fds();
		vu_end(vs);
		return;
	}
	vu_close_fds();
}

/* The front-end connected: serve it, and stop listening (there is only ever one). */
static void
vu_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vsock *vs = arg;
	int c;

	(void)what;
	c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_error("accept: %s", strerror(errno));
		return;
	}
	event_free(vs->vu_ev);
	close(fd); /* the listening socket: QEMU never reconnects */
	vs->vu_fd = c;
	vs->vu_ev = event_new(vs->base, c, EV_READ | EV_PERSIST, vu_read_cb, vs);
	if (vs->vu_ev == NULL || event_add(vs->vu_ev, NULL) < 0)
		fatalx("front-end event");
	log_info("front-end connected");
}

int
vu_start(struct vsock *vs, int listen_fd, struct status *st)
{
	for (unsigned i = 0; i < VQ_COUNT; i++) {
		memset(&vs->vq[i], 0, sizeof vs->vq[i]);
		vs->vq[i].kick_fd = vs->vq[i].call_fd = vs->vq[i].err_fd = -1;
	}
	vu_in.have = 0;
	vu_in.nfds = 0;
	vs->vu_fd = listen_fd; /* until the front-end connects */
	vs->vu_ev = event_new(vs->base, listen_fd, EV_READ | EV_PERSIST, vu_accept_cb, vs);
	if (vs->vu_ev == NULL || event_add(vs->vu_ev, NULL) < 0)
		return status_set(st, ST_INTERNAL, "vhost-user listen event");
	return 0;
}

void
vu_free(struct vsock *vs)
{
	for (unsigned i = 0; i < VQ_COUNT; i++)
		vu_reset_queue(&vs->vq[i]);
	gmem_clear(&vs->mem);
	if (vs->vu_ev != NULL)
		event_free(vs->vu_ev);
	vs->vu_ev = NULL;
	if (vs->vu_fd >= 0)
		close(vs->vu_fd);
	vs->vu_fd = -1;
	vu_close_fds();
}
