/*
 * test_vsock.c: vmshim-vsock's vhost-user side and data paths without QEMU (contrib/vsock/).
 *
 * The test plays QEMU: it connects to the backend's vhost-user socket (the backend's loop is
 * run in steps on this thread), negotiates, hands over a memfd as guest memory and sets up
 * the rx and tx rings in it, then plays the guest driver by writing descriptors and avail
 * entries and kicking. Checked: the feature and config answers, GET_VRING_BASE, a REQUEST to
 * a closed host port answered with RST, a host CONNECT becoming a REQUEST and the guest's
 * RESPONSE an "OK" line, data both ways with the header's credit fields, a payload past the
 * credit answered with RST, a corrupt avail index stopping the ring, and a malformed message
 * ending the session.
 */
#include "config.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "transport.h"
#include "util.h"
#include "vsock.h"

#define MEM_SIZE (1u << 20)
#define QNUM	 16u
#define GPA_BASE 0x100000ull
#define UVA_BASE 0x7f1200000000ull
/* Ring layout in guest memory (offsets): tx at 0, rx at 4096; buffers from 64 KiB. */
#define TX_OFF	0u
#define RX_OFF	4096u
#define BUF_OFF 65536u

static struct vsock vs;
static char dir[64];
static int front = -1; /* our vhost-user connection */
static uint8_t *gmem;  /* our mapping of the guest memory */
static int kick[2], call[2];
static uint16_t tx_avail, rx_avail, rx_seen;
static unsigned next_buf;

static void
loop_turns(int n)
{
	for (int i = 0; i < n; i++)
		event_base_loop(vs.base, EVLOOP_NONBLOCK);
}

static void
send_msg(uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds, int nfds)
{
	uint8_t buf[512];
	struct iovec iov = {buf, 12 + size};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} cb;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	if (size > 0)
		memcpy(buf + 12, payload, size);
	if (nfds > 0) {
		mh.msg_control = cb.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	CU_ASSERT_FATAL(sendmsg(front, &mh, 0) == (ssize_t)(12 + size));
	loop_turns(3);
}

/* Read one reply; returns its payload size (payload into out). */
static uint32_t
recv_reply(uint32_t want_req, void *out, uint32_t max)
{
	uint8_t hdr[12];
	uint32_t req, flags, size;

	CU_ASSERT_FATAL(read_full_deadline(front, hdr, 12, time_mono_ms() + 2000) == 0);
	memcpy(&req, hdr, 4);
	memcpy(&flags, hdr + 4, 4);
	memcpy(&size, hdr + 8, 4);
	CU_ASSERT(req == want_req);
	CU_ASSERT(flags == (0x1 | 0x4));
	CU_ASSERT_FATAL(size <= max);
	CU_ASSERT_FATAL(read_full_deadline(front, out, size, time_mono_ms() + 2000) == 0);
	return size;
}

static void
vring_u32s(uint32_t req, uint32_t a, uint32_t b)
{
	uint32_t p[2] = {a, b};

	send_msg(req, 1, p, 8, NULL, 0);
}

static void
vring_fd(uint32_t req, uint32_t idx, int fd)
{
	uint64_t v = idx;

	send_msg(req, 1, &v, 8, &fd, 1);
}

static void
setup_ring(uint32_t idx, uint32_t off)
{
	uint8_t a[40] = {0};
	uint64_t desc = UVA_BASE + off, used = UVA_BASE + off + 512, avail = UVA_BASE + off + 256;

	vring_u32s(8, idx, QNUM);
	vring_u32s(10, idx, 0);
	memcpy(a, &idx, 4);
	memcpy(a + 8, &desc, 8);
	memcpy(a + 16, &used, 8);
	memcpy(a + 24, &avail, 8);
	send_msg(9, 1, a, 40, NULL, 0);
	vring_fd(13, idx, call[idx]);
	vring_fd(12, idx, kick[idx]);
	vring_u32s(18, idx, 1);
}

static struct virtq_desc *
desc(uint32_t off, unsigned i)
{
	return (struct virtq_desc *)(gmem + off) + i;
}

static uint16_t *
avail_idx(uint32_t off)
{
	return (uint16_t *)(gmem + off + 258);
}

static uint16_t *
avail_ring(uint32_t off, unsigned i)
{
	return (uint16_t *)(gmem + off + 260) + (i % QNUM);
}

static struct virtq_used_elem *
used_elem(uint32_t off, unsigned i)
{
	return (struct virtq_used_elem *)(gmem + off + 516) + (i % QNUM);
}

static uint16_t
used_idx(uint32_t off)
{
	return *(volatile uint16_t *)(gmem + off + 514);
}

static void
kick_q(unsigned q)
{
	uint64_t one = 1;

	CU_ASSERT(write(kick[q], &one, 8) == 8);
	loop_turns(4);
}

/* Give the device n rx buffers of 4 KiB + header. */
static void
give_rx(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned d = rx_avail % QNUM;
		desc(RX_OFF, d)->addr = GPA_BASE + BUF_OFF + 8192 * (next_buf++ % 32);
		desc(RX_OFF, d)->len = 4096 + PKT_HDR_LEN;
		desc(RX_OFF, d)->flags = 2;
		desc(RX_OFF, d)->next = 0;
		*avail_ring(RX_OFF, rx_avail) = (uint16_t)d;
		rx_avail++;
	}
	__atomic_store_n(avail_idx(RX_OFF), rx_avail, __ATOMIC_RELEASE);
	kick_q(VQ_RX);
}

/* Send a packet from the guest: header and payload in one descriptor. */
static void
guest_send(enum pkt_op op, uint32_t sport, uint32_t dport, const void *data, uint32_t len,
    uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt)
{
	unsigned d = tx_avail % QNUM;
	uint32_t off = BUF_OFF + 8192 * (next_buf++ % 32);
	struct pkt_hdr h = {.src_cid = 42,
	    .dst_cid = 2,
	    .src_port = sport,
	    .dst_port = dport,
	    .len = len,
	    .type = 1,
	    .op = (uint16_t)op,
	    .flags = flags,
	    .buf_alloc = buf_alloc,
	    .fwd_cnt = fwd_cnt};

	pkt_encode(&h, gmem + off);
	if (len > 0)
		memcpy(gmem + off + PKT_HDR_LEN, data, len);
	desc(TX_OFF, d)->addr = GPA_BASE + off;
	desc(TX_OFF, d)->len = PKT_HDR_LEN + len;
	desc(TX_OFF, d)->flags = 0;
	*avail_ring(TX_OFF, tx_avail) = (uint16_t)d;
	tx_avail++;
	__atomic_store_n(avail_idx(TX_OFF), tx_avail, __ATOMIC_RELEASE);
	kick_q(VQ_TX);
}

/* The next packet the device put in the rx ring, or false. */
static bool
guest_recv(struct pkt_hdr *h, uint8_t *payload)
{
	struct virtq_used_elem *e;

	if (used_idx(RX_OFF) == rx_seen)
		return false;
	e = used_elem(RX_OFF, rx_seen++);
	CU_ASSERT_FATAL(e->id < QNUM);
	pkt_decode(gmem + (desc(RX_OFF, e->id)->addr - GPA_BASE), h);
	CU_ASSERT(e->len == PKT_HDR_LEN + h->len);
	if (payload != NULL && h->len > 0)
		memcpy(
		    payload, gmem + (desc(RX_OFF, e->id)->addr - GPA_BASE) + PKT_HDR_LEN, h->len);
	return true;
}

static void
test_negotiate(void)
{
	uint8_t buf[300];
	uint64_t v;
	uint32_t cfg[3] = {0, 8, 0};
	uint8_t region[40] = {0};
	uint64_t r[4] = {GPA_BASE, MEM_SIZE, UVA_BASE, 0};
	int memfd;

	send_msg(1, 1, NULL, 0, NULL, 0);
	CU_ASSERT(recv_reply(1, &v, 8) == 8);
	CU_ASSERT((v & (1ull << 32)) != 0 && (v & (1ull << 30)) != 0);
	CU_ASSERT((v & (1ull << 28)) == 0); /* no indirect descriptors */
	send_msg(15, 1, NULL, 0, NULL, 0);
	CU_ASSERT(recv_reply(15, &v, 8) == 8);
	CU_ASSERT((v & (1ull << 9)) != 0);
	v = 1ull << 9;
	send_msg(16, 1, &v, 8, NULL, 0);
	send_msg(3, 1, NULL, 0, NULL, 0);
	memset(buf, 0xee, sizeof buf);
	memcpy(buf, cfg, 12);
	send_msg(24, 1, buf, 12 + 8, NULL, 0);
	CU_ASSERT(recv_reply(24, buf, sizeof buf) == 20);
	CU_ASSERT(buf[12] == 42 && buf[13] == 0 && buf[19] == 0);
	v = (1ull << 32) | (1ull << 30);
	send_msg(2, 1, &v, 8, NULL, 0);

	memfd = memfd_create("guest", MFD_CLOEXEC);
	CU_ASSERT_FATAL(memfd >= 0 && ftruncate(memfd, MEM_SIZE) == 0);
	gmem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	CU_ASSERT_FATAL(gmem != MAP_FAILED);
	v = 1;
	memcpy(region, &v, 4);
	memcpy(region + 8, r, 32);
	send_msg(5, 1, region, 40, &memfd, 1);
	close(memfd);
	CU_ASSERT(vs.mem.n == 1);

	for (int i = 0; i < 2; i++) {
		kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	setup_ring(VQ_TX, TX_OFF);
	setup_ring(VQ_RX, RX_OFF);
	CU_ASSERT(vu_running(&vs));
}

static void
test_rst_closed_port(void)
{
	struct pkt_hdr h;
	uint64_t n;

	give_rx(12);
	guest_send(PKT_OP_REQUEST, 5000, 7777, NULL, 0, 0, 65536, 0);
	CU_ASSERT(used_idx(TX_OFF) == tx_avail);
	CU_ASSERT_FATAL(guest_recv(&h, NULL));
	CU_ASSERT(h.op == PKT_OP_RST && h.src_port == 7777 && h.dst_port == 5000);
	CU_ASSERT(h.src_cid == 2 && h.dst_cid == 42);
	CU_ASSERT(read(call[VQ_RX], &n, 8) == 8);
	/* An RST is not answered. */
	guest_send(PKT_OP_RST, 5000, 7777, NULL, 0, 0, 0, 0);
	CU_ASSERT(!guest_recv(&h, NULL));
}

static void
test_host_connect_and_data(void)
{
	char path[200], line[64];
	uint8_t data[4096];
	struct pkt_hdr h;
	int fd;
	ssize_t n;

	snprintf(path, sizeof path, "%s/v.sock", dir);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&un, sizeof un) == 0);
	CU_ASSERT(write(fd, "connect 1024\nearly", 18) == 18);
	loop_turns(4);
	CU_ASSERT_FATAL(guest_recv(&h, NULL));
	CU_ASSERT(h.op == PKT_OP_REQUEST && h.dst_port == 1024 && h.src_port == 1073741824u);
	CU_ASSERT(h.buf_alloc == CONN_BUF && h.fwd_cnt == 0);
	/* The guest accepts with a 16-byte buffer: the host may send that much, no more. */
	guest_send(PKT_OP_RESPONSE, 1024, h.src_port, NULL, 0, 0, 16, 0);
	n = read(fd, line, 16);
	CU_ASSERT(n == 14 && memcmp(line, "OK 1073741824\n", 14) == 0);
	loop_turns(4);
	/* "early" followed the line: it is data, and it arrives. */
	CU_ASSERT_FATAL(guest_recv(&h, data));
	CU_ASSERT(h.op == PKT_OP_RW && h.len == 5 && memcmp(data, "early", 5) == 0);
	CU_ASSERT(write(fd, "0123456789abcdefXYZ", 19) == 19);
	loop_turns(4);
	CU_ASSERT_FATAL(guest_recv(&h, data));
	CU_ASSERT(h.op == PKT_OP_RW && h.len == 11); /* 16 - 5 in flight */
	/* Out of credit: one CREDIT_REQUEST, nothing more read. */
	CU_ASSERT_FATAL(guest_recv(&h, NULL));
	CU_ASSERT(h.op == PKT_OP_CREDIT_REQUEST);
	CU_ASSERT(!guest_recv(&h, NULL));
	guest_send(PKT_OP_CREDIT_UPDATE, 1024, 1073741824u, NULL, 0, 0, 16, 16);
	loop_turns(4);
	CU_ASSERT_FATAL(guest_recv(&h, data));
	CU_ASSERT(h.op == PKT_OP_RW && h.len == 8 && memcmp(data, "bcdefXYZ", 8) == 0);

	/* Guest to host, and the fwd_cnt the next packet reports. */
	guest_send(PKT_OP_RW, 1024, 1073741824u, "hello host", 10, 0, 16, 19);
	n = read(fd, line, sizeof line);
	CU_ASSERT(n == 10 && memcmp(line, "hello host", 10) == 0);
	CU_ASSERT(write(fd, "!", 1) == 1);
	loop_turns(4);
	CU_ASSERT_FATAL(guest_recv(&h, data));
	CU_ASSERT(h.op == PKT_OP_RW && h.fwd_cnt == 10);

	/* The guest shuts its sending side: the host reads EOF, and can still send. */
	guest_send(PKT_OP_SHUTDOWN, 1024, 1073741824u, NULL, 0, PKT_SHUTDOWN_SEND, 16, 20);
	CU_ASSERT(read(fd, line, sizeof line) == 0);
	CU_ASSERT(write(fd, "more", 4) == 4);
	loop_turns(4);
	CU_ASSERT_FATAL(guest_recv(&h, data));
	CU_ASSERT(h.op == PKT_OP_RW && h.len == 4);
	/* Both directions shut: the host socket is closed and the guest gets RST. */
	guest_send(PKT_OP_SHUTDOWN, 1024, 1073741824u, NULL, 0, PKT_SHUTDOWN_RCV, 16, 24);
	close(fd);
	loop_turns(4);
	CU_ASSERT_FATAL(guest_recv(&h, NULL));
	CU_ASSERT(h.op == PKT_OP_RST);
	CU_ASSERT(vs.nconns == 0);
}

/* Without rx buffers the host socket is not read: its bytes stay in the host's send queue. */
static void
test_no_rx_buffers(void)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	uint8_t data[4096], big[1000];
	struct pkt_hdr h;
	int fd, queued = -1;

	snprintf(un.sun_path, sizeof un.sun_path, "%s", vs.uds_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&un, sizeof un) == 0);
	CU_ASSERT(write(fd, "CONNECT 1025\n", 13) == 13);
	loop_turns(4);
	CU_ASSERT_FATAL(guest_recv(&h, NULL));
	CU_ASSERT_FATAL(h.op == PKT_OP_REQUEST);
	guest_send(PKT_OP_RESPONSE, 1025, h.src_port, NULL, 0, 0, 65536, 0);
	CU_ASSERT(read(fd, data, 14) == 14);
	/* Use up the buffers the device still has, a byte each. */
	while (used_idx(RX_OFF) != rx_avail) {
		CU_ASSERT_FATAL(write(fd, "b", 1) == 1);
		loop_turns(3);
		CU_ASSERT_FATAL(guest_recv(&h, data));
		CU_ASSERT(h.op == PKT_OP_RW && h.len == 1);
	}
	memset(big, 'q', sizeof big);
	CU_ASSERT(write(fd, big, sizeof big) == (ssize_t)sizeof big);
	loop_turns(6);
	/* Unread bytes count with their buffer overhead: at least what was written. */
	CU_ASSERT(ioctl(fd, SIOCOUTQ, &queued) == 0 && queued >= (int)sizeof big);
	CU_ASSERT(!guest_recv(&h, NULL));
	give_rx(1);
	CU_ASSERT_FATAL(guest_recv(&h, data));
	CU_ASSERT(h.op == PKT_OP_RW && h.len == sizeof big && data[999] == 'q');
	CU_ASSERT(ioctl(fd, SIOCOUTQ, &queued) == 0 && queued == 0);
	close(fd);
	give_rx(4);
	loop_turns(4);
	CU_ASSERT_FATAL(guest_recv(&h, NULL));
	CU_ASSERT(h.op == PKT_OP_SHUTDOWN && h.flags == PKT_SHUTDOWN_SEND);
	guest_send(PKT_OP_SHUTDOWN, 1025, h.src_port, NULL, 0, 3, 65536, 0);
	CU_ASSERT_FATAL(guest_recv(&h, NULL));
	CU_ASSERT(h.op == PKT_OP_RST);
	CU_ASSERT(vs.nconns == 0);
}

static void
test_corrupt_avail(void)
{
	uint32_t out[2];

	__atomic_store_n(avail_idx(TX_OFF), (uint16_t)(tx_avail + 100), __ATOMIC_RELEASE);
	kick_q(VQ_TX);
	CU_ASSERT(vs.vq[VQ_TX].broken);
	CU_ASSERT(!vu_running(&vs));
	vring_u32s(11, VQ_RX, 0);
	CU_ASSERT(recv_reply(11, out, 8) == 8);
	CU_ASSERT(out[0] == VQ_RX && out[1] == rx_seen);
}

static void
test_malformed_ends_session(void)
{
	uint8_t big[12];
	uint32_t req = 8, flags = 1, size = 100000;
	char c;

	memcpy(big, &req, 4);
	memcpy(big + 4, &flags, 4);
	memcpy(big + 8, &size, 4);
	CU_ASSERT(write(front, big, 12) == 12);
	CU_ASSERT(event_base_dispatch(vs.base) == 0); /* the session ended the loop */
	vu_free(&vs);
	CU_ASSERT(read(front, &c, 1) == 0);
}

int
main(void)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct status st;
	char path[200];
	int lfd;
	CU_pSuite s;

	/* The faults the tests provoke are logged by design: shown only with TEST_DEBUG=1. */
	if (getenv("TEST_DEBUG") != NULL)
		log_set_level(LOG_DEBUG);
	else if (log_open("/dev/null", &st) < 0)
		return 1;
	snprintf(dir, sizeof dir, "/tmp/test_vsock.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	memset(&vs, 0, sizeof vs);
	vs.base = event_base_new();
	vs.guest_cid = 42;
	vs.listen_fd = -1;
	snprintf(vs.uds_path, sizeof vs.uds_path, "%s/v.sock", dir);
	conn_init(&vs);
	snprintf(path, sizeof path, "%s/vu.sock", dir);
	lfd = transport_listen_unix(path, 0600, 4, &st);
	vs.listen_fd = transport_listen_unix(vs.uds_path, 0600, 4, &st);
	if (lfd < 0 || vs.listen_fd < 0 || vu_start(&vs, lfd, &st) < 0 || host_listen(&vs, &st) < 0)
		return 1;
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	front = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(front, (struct sockaddr *)&un, sizeof un) < 0)
		return 1;
	loop_turns(2);

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("vsock", NULL, NULL);
	CU_add_test(s, "negotiation, config, memory table, rings", test_negotiate);
	CU_add_test(s, "REQUEST to a closed host port gets RST", test_rst_closed_port);
	CU_add_test(s, "host CONNECT, credit both ways, shutdown", test_host_connect_and_data);
	CU_add_test(s, "no rx buffers: the host socket is not read", test_no_rx_buffers);
	CU_add_test(s, "a corrupt avail index stops the ring", test_corrupt_avail);
	CU_add_test(s, "a malformed message ends the session", test_malformed_ends_session);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();

	conn_free_all(&vs);
	host_free(&vs);
	vu_free(&vs);
	event_base_free(vs.base);
	close(front);
	for (int i = 0; i < 2; i++) {
		close(kick[i]);
		close(call[i]);
	}
	if (gmem != NULL)
		munmap(gmem, MEM_SIZE);
	unlink(path);
	unlink(vs.uds_path);
	rmdir(dir);
	return fails == 0 ? 0 : 1;
}
