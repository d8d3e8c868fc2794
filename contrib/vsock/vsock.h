/*
 * vsock.h: vmshim-vsock's internal header, in sections by the file that defines them.
 *
 * vmshim-vsock is a vhost-user-vsock device backend: QEMU owns the virtio-vsock PCI device
 * and hands us its guest memory and three split virtqueues (rx, tx, event) over a vhost-user
 * socket; we play the host end of every vsock connection and expose it on the host as a
 * hybrid Unix socket (CONNECT <port> / OK <hostport>, guest-initiated connections to
 * <uds>_<port>). Everything runs on one libevent loop thread; there are no other threads.
 *
 * Files: vhost-user.c (the vhost-user protocol and the device state it sets up), virtq.c
 * (guest memory translation and split virtqueues), packet.c (the virtio-vsock header),
 * conn.c (the connection table, credit accounting and both data paths), host.c (the hybrid
 * Unix socket side), main.c (command line, start-up, confinement).
 */
#ifndef VMSHIM_VSOCK_H
#define VMSHIM_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "status.h"

#define VSOCK_HOST_CID 2u

/* The device's queues, in virtio-vsock order. */
enum {
	VQ_RX = 0, /* device to driver: packets for the guest */
	VQ_TX = 1, /* driver to device: packets from the guest */
	VQ_EVENT = 2,
	VQ_COUNT = 3,
};

/* ---- virtq.c ---- */

/* At most this many memory regions (vhost-user's baseline without memory-slot messages). */
#define GMEM_MAX_REGIONS 8
/* At most this many descriptors are followed in one chain, whatever the queue size. */
#define VIRTQ_MAX_SEGS 64
/* Largest queue size accepted from the front-end (the split ring's maximum). */
#define VIRTQ_MAX_NUM 32768

/* One region of guest memory, mapped into this process. */
struct gmem_region {
	uint64_t gpa;  /* guest physical address of the first byte */
	uint64_t size; /* bytes */
	uint64_t uva;  /* the front-end's (QEMU's) virtual address of the first byte */
	uint8_t *host; /* our address of the first byte */
	void *map;     /* what mmap returned (NULL: not ours to unmap, e.g. the fuzzer's) */
	size_t map_len;
};

/* The guest memory table. */
struct gmem {
	unsigned n;
	struct gmem_region r[GMEM_MAX_REGIONS];
};

/* One contiguous piece of a descriptor chain, translated. */
struct virtq_seg {
	uint8_t *base;
	size_t len;
};

/* A descriptor chain taken from the avail ring, all of one direction. */
struct virtq_chain {
	uint16_t head;
	unsigned nseg;
	struct virtq_seg seg[VIRTQ_MAX_SEGS];
	size_t len; /* sum of seg[].len */
};

/* The split ring's layout in guest memory (little-endian). */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
struct virtq_avail {
	uint16_t flags, idx;
	uint16_t ring[];
};
struct virtq_used_elem {
	uint32_t id, len;
};
struct virtq_used {
	uint16_t flags, idx;
	struct virtq_used_elem ring[];
};

/* One split virtqueue as the front-end configured it. */
struct virtq {
	unsigned num;				/* queue size, a power of two; 0 = not set */
	uint64_t desc_uva, avail_uva, used_uva; /* as given, translated on each memory table */
	struct virtq_desc *desc;		/* guest memory: read with care, never trusted */
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t last_avail; /* next avail entry to take */
	uint16_t last_used;  /* next used entry to fill */
	bool enabled;	     /* SET_VRING_ENABLE (or no protocol features) */
	bool broken;	     /* the guest corrupted the ring: stop until the next start */
	int kick_fd, call_fd, err_fd;
	struct event *kick_ev;
	unsigned pushed; /* used entries added since the last notify */
};

enum virtq_pop_result {
	VIRTQ_EMPTY = 0,
	VIRTQ_CHAIN = 1, /* *c holds a chain */
	VIRTQ_BAD = 2,	 /* a malformed chain: c->head is set, give it back with length 0 */
	VIRTQ_BROKEN = 3 /* the ring itself is inconsistent: q->broken is set */
};

/* Our address of guest-physical [gpa, gpa+*len): *len is cut to the contiguous part. */
uint8_t *gmem_gpa(const struct gmem *m, uint64_t gpa, uint64_t *len);
/* Our address of the front-end's virtual range [uva, uva+len), or NULL if not all mapped. */
uint8_t *gmem_uva(const struct gmem *m, uint64_t uva, uint64_t len);
/* Unmap every region we mapped. */
void gmem_clear(struct gmem *m);

/* Translate the ring addresses against m. 0, or -1 when a ring is not inside guest memory. */
int virtq_map(struct virtq *q, const struct gmem *m);
/* Whether the queue may be processed: sized, mapped, kicked, enabled and not broken. */
bool virtq_ready(const struct virtq *q);
/* Take the next chain; `writable` says which direction every descriptor must have. */
enum virtq_pop_result virtq_pop(
    struct virtq *q, const struct gmem *m, bool writable, struct virtq_chain *c);
/* Put back the chain taken last (nothing was written to it and it was not pushed). */
void virtq_unpop(struct virtq *q);
/* Return a chain to the driver with `len` bytes written. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Signal the call eventfd if entries were pushed and the driver did not suppress it. */
void virtq_notify(struct virtq *q);
/* Copy between a chain and flat memory from byte `off`; return the bytes copied. */
size_t virtq_chain_read(const struct virtq_chain *c, size_t off, void *dst, size_t len);
size_t virtq_chain_write(const struct virtq_chain *c, size_t off, const void *src, size_t len);
/* Fill iov (at most max entries) with the chain's bytes from `off`, at most len; returns n. */
struct iovec;
int virtq_chain_iov(
    const struct virtq_chain *c, size_t off, size_t len, struct iovec *iov, int max);

/* ---- packet.c ---- */

#define PKT_HDR_LEN	  44
#define PKT_MAX_PAYLOAD	  (64u * 1024u) /* the largest packet the guest may send */
#define PKT_TYPE_STREAM	  1
#define PKT_SHUTDOWN_RCV  1u
#define PKT_SHUTDOWN_SEND 2u

enum pkt_op {
	PKT_OP_INVALID = 0,
	PKT_OP_REQUEST = 1,
	PKT_OP_RESPONSE = 2,
	PKT_OP_RST = 3,
	PKT_OP_SHUTDOWN = 4,
	PKT_OP_RW = 5,
	PKT_OP_CREDIT_UPDATE = 6,
	PKT_OP_CREDIT_REQUEST = 7,
};

/* The virtio-vsock header in host byte order. */
struct pkt_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

void pkt_decode(const uint8_t b[PKT_HDR_LEN], struct pkt_hdr *h);
void pkt_encode(const struct pkt_hdr *h, uint8_t b[PKT_HDR_LEN]);
/*
 * Check a packet the guest sent through a chain of `chain_len` bytes. NULL when it is
 * well-formed, else why not (a static string).
 */
const char *pkt_check(const struct pkt_hdr *h, uint64_t guest_cid, size_t chain_len);
const char *pkt_op_name(unsigned op);

/* ---- vhost-user.c ---- */

/* The device: what QEMU set up, the connection table and the hybrid socket. */
struct vsock {
	struct event_base *base;
	uint64_t guest_cid;
	char uds_path[108];

	/* vhost-user.c */
	int vu_fd; /* the front-end connection, -1 before accept */
	struct event *vu_ev;
	uint64_t features, protocol_features;
	struct gmem mem;
	struct virtq vq[VQ_COUNT];

	/* conn.c */
	TAILQ_HEAD(, conn) conns;
	TAILQ_HEAD(, conn) pending;  /* connections with control packets to send */
	TAILQ_HEAD(, conn_rst) rsts; /* resets for connections that no longer exist */
	unsigned nconns, nrsts;
	uint32_t next_port;
	bool rx_starved;	/* the rx ring had no buffer: host reads are paused */
	struct event *tx_again; /* resumes tx processing after a batch */
	struct event *flush_ev; /* sends queued control packets, later in this loop turn */

	/* host.c */
	int listen_fd;
	struct event *listen_ev;
};

/* Accept the front-end on listen_fd (once) and serve it on vs->base. 0 or -1 with *st. */
int vu_start(struct vsock *vs, int listen_fd, struct status *st);
/* Whether the rings that carry packets (rx and tx) can be processed. */
bool vu_running(const struct vsock *vs);
void vu_free(struct vsock *vs);

/* ---- conn.c ---- */

struct conn;

/* Most connections at once; further requests are refused with RST. */
#define CONN_MAX 256
/* Bytes of guest data held per connection (the credit we give the guest). */
#define CONN_BUF (256u * 1024u)

void conn_init(struct vsock *vs);
/* The tx queue was kicked: process what the guest sent. */
void conn_tx_kick(struct vsock *vs);
/* The rx queue was kicked: the guest gave buffers, send what waits. */
void conn_rx_kick(struct vsock *vs);
/* The device stopped or reset: drop every connection (host sockets closed). */
void conn_reset_all(struct vsock *vs);
/* A host client finished its handshake for guest port `port` on fd (ownership passes). */
void conn_host_connect(struct vsock *vs, int fd, uint32_t port);
void conn_free_all(struct vsock *vs);
/* Process the packet the guest sent in chain c (header h already checked). */
void conn_guest_packet(struct vsock *vs, const struct pkt_hdr *h, const struct virtq_chain *c);

/* ---- host.c ---- */

/* Listen on the hybrid socket path (atomically: it appears ready). 0 or -1 with *st. */
int host_listen(struct vsock *vs, struct status *st);
/* Connect to <uds>_<port> for a guest-initiated connection: fd or -errno. */
int host_dial(const struct vsock *vs, uint32_t port);
void host_free(struct vsock *vs);

#endif
