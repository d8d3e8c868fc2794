/*
 * frame.c: the ttrpc framing (docs/CONTRACT.md 4) and the stream framing (docs/PROTOCOL.md 3)
 * as byte-level codecs.
 *
 * Owns nothing beyond what a decoder holds: a frame_decoder owns the partial payload of the
 * frame it is assembling (released by frame_decoder_free) and hands each whole payload to the
 * caller on FRAME_READY; frame_encode returns a buffer the caller frees. The stream decoder
 * allocates nothing at all: it returns slices of the caller's input. A decoder is used by one
 * thread at a time (whichever drives its connection); the functions keep no global state.
 *
 * Memory is bounded by what a peer actually sends, never by what it announces: an oversized
 * ttrpc payload is skipped as it arrives, a normal one is buffered in a buffer that doubles
 * with the bytes received, and an oversized stream frame fails as soon as its length is read.
 *
 * The two fd helpers at the end (stream_read_frame, stream_write_frames) are the only I/O
 * here; they block the calling thread, so they belong on workers or in the agent.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "util.h"

/* The first allocation for a payload; later ones double up to the announced length. */
#define FRAME_PAYLOAD_INITIAL (64u * 1024)

static void
frame_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
frame_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void
frame_header_pack(const struct frame_header *h, uint8_t out[FRAME_HEADER_SIZE])
{
	frame_put_u32(out, h->length);
	frame_put_u32(out + 4, h->stream_id);
	out[8] = h->type;
	out[9] = h->flags;
}

void
frame_header_unpack(const uint8_t in[FRAME_HEADER_SIZE], struct frame_header *h)
{
	h->length = frame_get_u32(in);
	h->stream_id = frame_get_u32(in + 4);
	h->type = in[8];
	h->flags = in[9];
}

/* Build header and payload in one malloc'd buffer; a payload over 4 GiB is a caller bug. */
uint8_t *
frame_encode(uint32_t stream_id, uint8_t type, uint8_t flags, const void *payload, size_t len,
    size_t *out_len)
{
	struct frame_header h;
	uint8_t *buf;

	if (len > UINT32_MAX)
		fatalx("frame_encode: payload of %zu bytes", len);
	h.length = (uint32_t)len;
	h.stream_id = stream_id;
	h.type = type;
	h.flags = flags;
	buf = xmalloc(FRAME_HEADER_SIZE + len);
	frame_header_pack(&h, buf);
	if (len > 0)
		memcpy(buf + FRAME_HEADER_SIZE, payload, len);
	*out_len = FRAME_HEADER_SIZE + len;
	return buf;
}

void
frame_decoder_init(struct frame_decoder *d, size_t max_payload)
{
	memset(d, 0, sizeof *d);
	d->max_payload = max_payload;
}

void
frame_decoder_free(struct frame_decoder *d)
{
	free(d->payload);
	d->payload = NULL;
	d->payload_have = 0;
	d->payload_cap = 0;
	d->hdr_have = 0;
	d->discard_left = 0;
}

/*
 * States, all implied by the fields: discarding (discard_left > 0), reading a header
 * (hdr_have < FRAME_HEADER_SIZE) or reading the payload of d->cur (hdr_have ==
 * FRAME_HEADER_SIZE). Idle is "reading a header, none of it yet".
 */
bool
frame_decoder_idle(const struct frame_decoder *d)
{
	return d->hdr_have == 0 && d->discard_left == 0;
}

/* Make room for `more` payload bytes, doubling from 64 KiB but never past the frame length. */
static void
frame_decoder_reserve(struct frame_decoder *d, size_t more)
{
	size_t need = d->payload_have + more;
	size_t cap = d->payload_cap;

	if (need <= cap)
		return;
	if (cap == 0)
		cap = d->cur.length < FRAME_PAYLOAD_INITIAL ? d->cur.length : FRAME_PAYLOAD_INITIAL;
	while (cap < need)
		cap = cap > d->cur.length / 2 ? d->cur.length : cap * 2;
	d->payload = xrealloc(d->payload, cap);
	d->payload_cap = cap;
}

/* Hand the completed frame to the caller and go back to waiting for a header. */
static enum frame_result
frame_decoder_emit(struct frame_decoder *d, struct frame_header *hdr, uint8_t **payload)
{
	*hdr = d->cur;
	*payload = d->payload;
	d->payload = NULL;
	d->payload_have = 0;
	d->payload_cap = 0;
	d->hdr_have = 0;
	return FRAME_READY;
}

/* Run the state machine over buf until one event or the end of the input. */
enum frame_result
frame_decoder_feed(struct frame_decoder *d, const uint8_t *buf, size_t len, size_t *consumed,
    struct frame_header *hdr, uint8_t **payload)
{
	size_t off = 0, n;

	*payload = NULL;
	while (off < len) {
		if (d->discard_left > 0) {
			n = len - off;
			if (n > d->discard_left)
				n = (size_t)d->discard_left;
			d->discard_left -= n;
			off += n;
			continue;
		}
		if (d->hdr_have < FRAME_HEADER_SIZE) {
			n = FRAME_HEADER_SIZE - d->hdr_have;
			if (n > len - off)
				n = len - off;
			memcpy(d->hdr_buf + d->hdr_have, buf + off, n);
			d->hdr_have += n;
			off += n;
			if (d->hdr_have < FRAME_HEADER_SIZE)
				break;
			frame_header_unpack(d->hdr_buf, &d->cur);
			if (d->cur.length > d->max_payload) {
				d->hdr_have = 0;
				d->discard_left = d->cur.length;
				*hdr = d->cur;
				*consumed = off;
				return FRAME_TOO_BIG;
			}
			if (d->cur.length == 0) {
				*consumed = off;
				return frame_decoder_emit(d, hdr, payload);
			}
			continue;
		}
		n = d->cur.length - d->payload_have;
		if (n > len - off)
			n = len - off;
		frame_decoder_reserve(d, n);
		memcpy(d->payload + d->payload_have, buf + off, n);
		d->payload_have += n;
		off += n;
		if (d->payload_have == d->cur.length) {
			*consumed = off;
			return frame_decoder_emit(d, hdr, payload);
		}
	}
	*consumed = off;
	return FRAME_MORE;
}

void
stream_len_pack(uint32_t len, uint8_t out[STREAM_LEN_SIZE])
{
	frame_put_u32(out, len);
}

void
stream_decoder_init(struct stream_decoder *d, uint32_t max_len)
{
	memset(d, 0, sizeof *d);
	d->max_len = max_len != 0 ? max_len : STREAM_FRAME_MAX;
}

/*
 * Run the stream state machine: payload bytes come back as slices, a length is checked the
 * moment its fourth byte arrives, and anything after EOF fails the stream for good.
 */
enum stream_result
stream_decoder_feed(struct stream_decoder *d, const uint8_t *buf, size_t len, size_t *consumed,
    const uint8_t **data, size_t *data_len)
{
	size_t off = 0, n;
	uint32_t flen;

	*data = NULL;
	*data_len = 0;
	*consumed = 0;
	if (d->failed)
		return STREAM_ERROR;
	while (off < len) {
		if (d->eof) {
			d->failed = true;
			*consumed = off;
			return STREAM_ERROR;
		}
		if (d->left > 0) {
			n = len - off;
			if (n > d->left)
				n = d->left;
			d->left -= (uint32_t)n;
			*data = buf + off;
			*data_len = n;
			*consumed = off + n;
			return STREAM_DATA;
		}
		n = STREAM_LEN_SIZE - d->len_have;
		if (n > len - off)
			n = len - off;
		memcpy(d->len_buf + d->len_have, buf + off, n);
		d->len_have += n;
		off += n;
		if (d->len_have < STREAM_LEN_SIZE)
			break;
		d->len_have = 0;
		flen = frame_get_u32(d->len_buf);
		if (flen == 0) {
			d->eof = true;
			*consumed = off;
			return STREAM_EOF;
		}
		if (flen > d->max_len) {
			d->failed = true;
			*consumed = off;
			return STREAM_ERROR;
		}
		d->left = flen;
	}
	*consumed = off;
	return STREAM_MORE;
}

uint32_t
stream_decoder_payload_left(const struct stream_decoder *d)
{
	return d->failed ? 0 : d->left;
}

void
stream_decoder_skip(struct stream_decoder *d, uint32_t n)
{
	if (n > d->left)
		fatalx("stream_decoder_skip: %u over the %u payload bytes left", n, d->left);
	d->left -= n;
}

/*
 * Read the length, refuse it before touching the payload if it is over max_len, then read
 * exactly the payload: what follows on the fd belongs to the caller.
 */
long
stream_read_frame(int fd, void *buf, size_t max_len, int64_t deadline_ms)
{
	uint8_t lenb[STREAM_LEN_SIZE];
	uint32_t flen;
	int r;

	r = read_full_deadline(fd, lenb, sizeof lenb, deadline_ms);
	if (r < 0)
		return r;
	flen = frame_get_u32(lenb);
	if (flen > max_len)
		return -EMSGSIZE;
	r = read_full_deadline(fd, buf, flen, deadline_ms);
	if (r < 0)
		return r;
	return (long)flen;
}

/* Write data as frames of at most STREAM_WRITE_MAX bytes; len 0 sends the EOF frame. */
int
stream_write_frames(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t lenb[STREAM_LEN_SIZE];
	size_t n;
	int r;

	if (len == 0) {
		stream_len_pack(0, lenb);
		return write_all(fd, lenb, sizeof lenb);
	}
	while (len > 0) {
		n = len < STREAM_WRITE_MAX ? len : STREAM_WRITE_MAX;
		stream_len_pack((uint32_t)n, lenb);
		r = write_all(fd, lenb, sizeof lenb);
		if (r < 0)
			return r;
		r = write_all(fd, p, n);
		if (r < 0)
			return r;
		p += n;
		len -= n;
	}
	return 0;
}
