/*
 * fuzz_vsock.c: libFuzzer target for what vmshim-vsock reads from the guest: split-virtqueue
 * descriptor chains (contrib/vsock/virtq.c), virtio-vsock headers (packet.c) and the
 * connection state machine they drive (conn.c).
 *
 * The input is guest memory: it is copied over a zeroed 16 KiB region at guest-physical 0,
 * where the tx queue's rings sit at 0 (descriptors), 256 (avail) and 512 (used) and the rx
 * queue's at 1024, 1280 and 1536, both of size 16; the rest is for buffers. So the input
 * chooses the avail indices, the chains (lengths, flags, next links, loops, addresses in and
 * out of memory) and the packets. Then the tx queue is processed as a kick would, the control
 * packets it queues are flushed into the rx queue, and the loop runs once more.
 *
 * Invariants checked: every chain taken from a ring is given back (used catches up with
 * avail) unless the ring was found corrupt, and no more than two kicks' worth. The host sockets are
 * socketpairs whose far end is kept open for even ports and closed for odd ones, so both the
 * buffered write path and the reset on EPIPE run. Memory outside the region must never be touched
 * (ASan).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "vsock.h"

#define FUZZ_MEM   16384u
#define FUZZ_QNUM  16u
#define FUZZ_PEERS 64

/* Far ends of the host sockets, closed after the run. */
static int fuzz_peers[FUZZ_PEERS];
static int fuzz_npeers;

/* conn.c's host side: a socketpair stands in for <uds>_<port>. */
int
host_dial(const struct vsock *vs, uint32_t port)
{
	int sv[2];

	(void)vs;
	if (fuzz_npeers == FUZZ_PEERS)
		return -ECONNREFUSED;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -errno;
	if ((port & 1) != 0)
		close(sv[1]);
	else
		fuzz_peers[fuzz_npeers++] = sv[1];
	return sv[0];
}

/* The device is always running here. */
bool
vu_running(const struct vsock *vs)
{
	(void)vs;
	return true;
}

static void
fuzz_queue(struct virtq *q, struct gmem *m, uint64_t off)
{
	memset(q, 0, sizeof *q);
	q->num = FUZZ_QNUM;
	q->desc_uva = m->r[0].uva + off;
	q->avail_uva = m->r[0].uva + off + 256;
	q->used_uva = m->r[0].uva + off + 512;
	q->enabled = true;
	q->kick_fd = q->call_fd = q->err_fd = -1;
	fuzz_check(virtq_map(q, m) == 0, "rings inside the region");
}

/*
 * Our own used counter must have moved by at most what two kicks may take. (The rings are
 * guest memory, and the guest may point a buffer at them, so they are not read back.)
 */
static void
fuzz_check_used(const struct virtq *q, uint16_t used_start)
{
	fuzz_check((uint16_t)(q->last_used - used_start) <= 2 * FUZZ_QNUM, "used moved %u",
	    (unsigned)(uint16_t)(q->last_used - used_start));
	fuzz_check(q->last_used == q->last_avail || q->broken, "a chain taken but not returned");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *mem = aligned_alloc(4096, FUZZ_MEM);
	struct vsock vs;
	uint16_t rx_used0, tx_used0;

	static bool quiet;

	/* The guest's faults are logged by design; nobody reads them here. */
	if (!quiet) {
		struct status st;
		quiet = log_open("/dev/null", &st) == 0;
	}
	fuzz_check(mem != NULL, "alloc");
	memset(mem, 0, FUZZ_MEM);
	memcpy(mem, data, size < FUZZ_MEM ? size : FUZZ_MEM);

	memset(&vs, 0, sizeof vs);
	vs.vu_fd = vs.listen_fd = -1;
	vs.guest_cid = 3;
	vs.base = event_base_new();
	fuzz_check(vs.base != NULL, "event base");
	vs.mem.n = 1;
	vs.mem.r[0].gpa = 0;
	vs.mem.r[0].size = FUZZ_MEM;
	vs.mem.r[0].uva = 0x7f0000000000ull;
	vs.mem.r[0].host = mem;
	fuzz_queue(&vs.vq[VQ_TX], &vs.mem, 0);
	fuzz_queue(&vs.vq[VQ_RX], &vs.mem, 1024);
	/* The device starts where the driver's used index says, as after SET_VRING_BASE. */
	tx_used0 = vs.vq[VQ_TX].used->idx;
	rx_used0 = vs.vq[VQ_RX].used->idx;
	vs.vq[VQ_TX].last_used = tx_used0;
	vs.vq[VQ_RX].last_used = rx_used0;
	vs.vq[VQ_TX].last_avail = tx_used0;
	vs.vq[VQ_RX].last_avail = rx_used0;
	conn_init(&vs);

	conn_tx_kick(&vs);
	event_base_loop(vs.base, EVLOOP_NONBLOCK);
	conn_tx_kick(&vs);
	event_base_loop(vs.base, EVLOOP_NONBLOCK);

	fuzz_check_used(&vs.vq[VQ_TX], tx_used0);
	fuzz_check_used(&vs.vq[VQ_RX], rx_used0);

	conn_free_all(&vs);
	event_base_free(vs.base);
	for (int i = 0; i < fuzz_npeers; i++)
		close(fuzz_peers[i]);
	fuzz_npeers = 0;
	free(mem);
	return 0;
}
