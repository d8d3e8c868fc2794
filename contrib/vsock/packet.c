/*
 * packet.c: the virtio-vsock packet header: decoding, encoding and the checks every packet
 * from the guest passes before anything acts on it.
 *
 * The header is 44 little-endian bytes (source and destination CID and port, payload length,
 * type, operation, flags, and the sender's buffer size and forwarded-byte count for credit).
 * Pure functions, no state: the fuzz target drives them directly.
 */
#include "config.h"

#include <endian.h>
#include <stdint.h>
#include <string.h>

#include "vsock.h"

static uint64_t
pkt_get64(const uint8_t *b)
{
	uint64_t v;

	memcpy(&v, b, sizeof v);
	return le64toh(v);
}

static uint32_t
pkt_get32(const uint8_t *b)
{
	uint32_t v;

	memcpy(&v, b, sizeof v);
	return le32toh(v);
}

static uint16_t
pkt_get16(const uint8_t *b)
{
	uint16_t v;

	memcpy(&v, b, sizeof v);
	return le16toh(v);
}

static void
pkt_put64(uint8_t *b, uint64_t v)
{
	v = htole64(v);
	memcpy(b, &v, sizeof v);
}

static void
pkt_put32(uint8_t *b, uint32_t v)
{
	v = htole32(v);
	memcpy(b, &v, sizeof v);
}

static void
pkt_put16(uint8_t *b, uint16_t v)
{
	v = htole16(v);
	memcpy(b, &v, sizeof v);
}

void
pkt_decode(const uint8_t b[PKT_HDR_LEN], struct pkt_hdr *h)
{
	h->src_cid = pkt_get64(b);
	h->dst_cid = pkt_get64(b + 8);
	h->src_port = pkt_get32(b + 16);
	h->dst_port = pkt_get32(b + 20);
	h->len = pkt_get32(b + 24);
	h->type = pkt_get16(b + 28);
	h->op = pkt_get16(b + 30);
	h->flags = pkt_get32(b + 32);
	h->buf_alloc = pkt_get32(b + 36);
	h->fwd_cnt = pkt_get32(b + 40);
}

void
pkt_encode(const struct pkt_hdr *h, uint8_t b[PKT_HDR_LEN])
{
	pkt_put64(b, h->src_cid);
	pkt_put64(b + 8, h->dst_cid);
	pkt_put32(b + 16, h->src_port);
	pkt_put32(b + 20, h->dst_port);
	pkt_put32(b + 24, h->len);
	pkt_put16(b + 28, h->type);
	pkt_put16(b + 30, h->op);
	pkt_put32(b + 32, h->flags);
	pkt_put32(b + 36, h->buf_alloc);
	pkt_put32(b + 40, h->fwd_cnt);
}

const char *
pkt_check(const struct pkt_hdr *h, uint64_t guest_cid, size_t chain_len)
{
	if (chain_len < PKT_HDR_LEN)
		return "chain shorter than a header";
	if (h->src_cid != guest_cid)
		return "source CID is not the guest's";
	if (h->dst_cid != VSOCK_HOST_CID)
		return "destination is not the host";
	if (h->type != PKT_TYPE_STREAM)
		return "not a stream packet";
	if (h->op == PKT_OP_INVALID || h->op > PKT_OP_CREDIT_REQUEST)
		return "unknown operation";
	if (h->len > PKT_MAX_PAYLOAD)
		return "payload over 64 KiB";
	if (h->len > chain_len - PKT_HDR_LEN)
		return "payload longer than its buffers";
	if (h->op != PKT_OP_RW && h->len != 0)
		return "payload on a control packet";
	if (h->op == PKT_OP_SHUTDOWN && (h->flags & ~(PKT_SHUTDOWN_RCV | PKT_SHUTDOWN_SEND)) != 0)
		return "unknown shutdown flags";
	return NULL;
}

const char *
pkt_op_name(unsigned op)
{
	static const char *const names[] = {"INVALID", "REQUEST", "RESPONSE", "RST", "SHUTDOWN",
	    "RW", "CREDIT_UPDATE", "CREDIT_REQUEST"};

	return op < sizeof names / sizeof names[0] ? names[op] : "UNKNOWN";
}
