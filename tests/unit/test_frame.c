/*
 * test_frame.c: unit tests for common/frame.c, the ttrpc and stream framings.
 *
 * The decoders are driven the way the loop drives them: input cut at every byte boundary and
 * fed one byte at a time must decode exactly like input fed whole. Memory bounds are checked
 * through the decoder's own fields (an oversized payload is never buffered, a payload buffer
 * tracks the bytes received, not the length announced). The fd helpers run over socketpairs;
 * the writer side of the big transfer runs on a second thread so neither end depends on the
 * socket buffer size. Everything runs in this process; a watchdog alarm turns a hang into a
 * failure.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "util.h"
#include "unit.h"

/* One frame of the concatenated test input. */
struct tframe {
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
	size_t len;
};

/* A payload byte that depends on the frame and the offset, so misplaced bytes show. */
static uint8_t
pattern(size_t frame, size_t i)
{
	return (uint8_t)(i * 31 + frame * 7 + (i >> 8));
}

/* Concatenate the encoded frames into one buffer (caller frees). */
static uint8_t *
build_stream(const struct tframe *f, size_t nf, size_t *total)
{
	uint8_t *all = NULL, *enc, *pl;
	size_t len = 0, elen, i, j;

	for (i = 0; i < nf; i++) {
		pl = xmalloc(f[i].len + 1);
		for (j = 0; j < f[i].len; j++)
			pl[j] = pattern(i, j);
		enc = frame_encode(f[i].stream_id, f[i].type, f[i].flags, pl, f[i].len, &elen);
		all = xrealloc(all, len + elen);
		memcpy(all + len, enc, elen);
		len += elen;
		free(enc);
		free(pl);
	}
	*total = len;
	return all;
}

/* Check one decoded frame against its description; false on any mismatch. */
static bool
frame_matches(const struct tframe *f, size_t idx, const struct frame_header *h, const uint8_t *pl)
{
	size_t j;

	if (h->length != f->len || h->stream_id != f->stream_id || h->type != f->type ||
	    h->flags != f->flags)
		return false;
	if (f->len == 0)
		return pl == NULL;
	if (pl == NULL)
		return false;
	for (j = 0; j < f->len; j++)
		if (pl[j] != pattern(idx, j))
			return false;
	return true;
}

/*
 * Feed buf in chunks ending at cuts[0..ncuts) (the last cut must be total) and check that
 * exactly the frames f[] come out, in order, with the decoder idle between them and at the end.
 */
static bool
decode_chunks(const struct tframe *f, size_t nf, const uint8_t *buf, const size_t *cuts,
    size_t ncuts, size_t max_payload)
{
	struct frame_decoder d;
	struct frame_header h;
	uint8_t *pl;
	size_t start = 0, off, used, got = 0, c;
	enum frame_result r;
	bool ok = true;

	frame_decoder_init(&d, max_payload);
	for (c = 0; c < ncuts && ok; c++) {
		off = start;
		while (off < cuts[c] && ok) {
			r = frame_decoder_feed(&d, buf + off, cuts[c] - off, &used, &h, &pl);
			if (used > cuts[c] - off) {
				ok = false;
				break;
			}
			off += used;
			if (r == FRAME_MORE) {
				ok = off == cuts[c] && pl == NULL;
			} else if (r == FRAME_READY) {
				ok = used > 0 && got < nf && frame_matches(&f[got], got, &h, pl) &&
				     frame_decoder_idle(&d);
				got++;
				free(pl);
			} else {
				ok = false;
			}
		}
		start = cuts[c];
	}
	ok = ok && got == nf && frame_decoder_idle(&d) && d.payload == NULL;
	frame_decoder_free(&d);
	return ok;
}

static void
test_header_layout(void)
{
	static const uint8_t want[FRAME_HEADER_SIZE] = {
	    0x01, 0x02, 0x03, 0x04, 0xa0, 0xb0, 0xc0, 0xd0, 0x02, 0x05};
	struct frame_header h = {.length = 0x01020304,
	    .stream_id = 0xa0b0c0d0,
	    .type = FRAME_TYPE_RESPONSE,
	    .flags = FRAME_FLAG_REMOTE_CLOSED | FRAME_FLAG_NO_DATA};
	struct frame_header back;
	uint8_t out[FRAME_HEADER_SIZE];

	frame_header_pack(&h, out);
	CU_ASSERT_EQUAL(memcmp(out, want, sizeof want), 0);
	memset(&back, 0xff, sizeof back);
	frame_header_unpack(out, &back);
	CU_ASSERT_EQUAL(back.length, 0x01020304u);
	CU_ASSERT_EQUAL(back.stream_id, 0xa0b0c0d0u);
	CU_ASSERT_EQUAL(back.type, FRAME_TYPE_RESPONSE);
	CU_ASSERT_EQUAL(back.flags, FRAME_FLAG_REMOTE_CLOSED | FRAME_FLAG_NO_DATA);

	/* The extremes survive too. */
	h.length = UINT32_MAX;
	h.stream_id = 0;
	h.type = 0xff;
	h.flags = 0;
	frame_header_pack(&h, out);
	frame_header_unpack(out, &back);
	CU_ASSERT_EQUAL(back.length, UINT32_MAX);
	CU_ASSERT_EQUAL(back.stream_id, 0u);
	CU_ASSERT_EQUAL(back.type, 0xff);
	CU_ASSERT_EQUAL(back.flags, 0);
}

static void
test_encode(void)
{
	static const uint8_t want[] = {
	    0, 0, 0, 3, 0, 0, 0, 7, FRAME_TYPE_REQUEST, 0, 'a', 'b', 'c'};
	static const uint8_t want_empty[] = {
	    0, 0, 0, 0, 0, 0, 1, 0, FRAME_TYPE_DATA, FRAME_FLAG_REMOTE_CLOSED};
	uint8_t *buf;
	size_t len = 0;

	buf = frame_encode(7, FRAME_TYPE_REQUEST, 0, "abc", 3, &len);
	CU_ASSERT_EQUAL(len, sizeof want);
	CU_ASSERT_EQUAL(memcmp(buf, want, sizeof want), 0);
	free(buf);

	buf = frame_encode(256, FRAME_TYPE_DATA, FRAME_FLAG_REMOTE_CLOSED, NULL, 0, &len);
	CU_ASSERT_EQUAL(len, FRAME_HEADER_SIZE);
	CU_ASSERT_EQUAL(memcmp(buf, want_empty, sizeof want_empty), 0);
	free(buf);
}

static const struct tframe mixed[] = {
    {1, FRAME_TYPE_REQUEST, 0, 0},
    {3, FRAME_TYPE_REQUEST, FRAME_FLAG_REMOTE_OPEN, 1},
    {5, FRAME_TYPE_DATA, FRAME_FLAG_REMOTE_CLOSED, 9},
    {7, FRAME_TYPE_RESPONSE, 0, 10},
    {9, FRAME_TYPE_DATA, FRAME_FLAG_NO_DATA, 0},
    {0xfffffffd, FRAME_TYPE_RESPONSE, 0, 11},
    {11, FRAME_TYPE_REQUEST, 0, 300},
    {13, FRAME_TYPE_RESPONSE, 0xff, 0},
    {15, FRAME_TYPE_DATA, 0, 777},
};

static void
test_decode_every_split(void)
{
	size_t total, k, cuts[2], bad = SIZE_MAX;
	uint8_t *buf = build_stream(mixed, ARRAY_SIZE(mixed), &total);

	/* Whole, and with one cut at every byte boundary (k = 0 is an empty first chunk). */
	for (k = 0; k <= total; k++) {
		cuts[0] = k;
		cuts[1] = total;
		if (!decode_chunks(mixed, ARRAY_SIZE(mixed), buf, cuts, 2, 1000)) {
			bad = k;
			break;
		}
	}
	if (bad != SIZE_MAX)
		fprintf(stderr, "decode failed with a cut at byte %zu of %zu\n", bad, total);
	CU_ASSERT_EQUAL(bad, SIZE_MAX);
	free(buf);
}

static void
test_decode_bytewise(void)
{
	size_t total, k, *cuts;
	uint8_t *buf = build_stream(mixed, ARRAY_SIZE(mixed), &total);

	cuts = xmalloc(total * sizeof *cuts);
	for (k = 0; k < total; k++)
		cuts[k] = k + 1;
	CU_ASSERT_TRUE(decode_chunks(mixed, ARRAY_SIZE(mixed), buf, cuts, total, 1000));
	/* Every frame is exactly at the limit or under it: a limit of 777 still takes them. */
	CU_ASSERT_TRUE(decode_chunks(mixed, ARRAY_SIZE(mixed), buf, cuts, total, 777));
	free(cuts);
	free(buf);
}

/* A payload far past the first 64 KiB allocation, fed in odd chunk sizes and bytewise. */
static void
test_decode_large_chunks(void)
{
	static const struct tframe big[] = {
	    {1, FRAME_TYPE_REQUEST, 0, 300000},
	    {3, FRAME_TYPE_RESPONSE, 0, 65536},
	    {5, FRAME_TYPE_DATA, 0, 65537},
	};
	static const size_t steps[] = {1, 3, 4099, 65536, 100000, 1000000};
	size_t total, s, k, n, *cuts;
	uint8_t *buf = build_stream(big, ARRAY_SIZE(big), &total);

	cuts = xmalloc(total * sizeof *cuts);
	for (s = 0; s < ARRAY_SIZE(steps); s++) {
		for (n = 0, k = steps[s]; k < total; k += steps[s])
			cuts[n++] = k;
		cuts[n++] = total;
		CU_ASSERT_TRUE(decode_chunks(big, ARRAY_SIZE(big), buf, cuts, n, 300000));
	}
	free(cuts);
	free(buf);
}

/* Feed one chunk through the decoder, recording events; checks discard never buffers. */
struct big_run {
	int too_big;
	int ready;
	bool buffered_during_discard;
	bool idle_during_discard;
	struct frame_header too_big_hdr;
	struct frame_header ready_hdr;
	uint8_t ready_payload[64];
};

static void
big_feed(struct frame_decoder *d, const uint8_t *buf, size_t len, struct big_run *run)
{
	struct frame_header h;
	uint8_t *pl;
	size_t off = 0, used;
	enum frame_result r;

	while (off < len) {
		r = frame_decoder_feed(d, buf + off, len - off, &used, &h, &pl);
		off += used;
		if (d->discard_left > 0) {
			if (d->payload != NULL || d->payload_cap != 0 || d->payload_have != 0)
				run->buffered_during_discard = true;
			if (frame_decoder_idle(d))
				run->idle_during_discard = true;
		}
		if (r == FRAME_TOO_BIG) {
			run->too_big++;
			run->too_big_hdr = h;
			CU_ASSERT_PTR_NULL(pl);
		} else if (r == FRAME_READY) {
			run->ready++;
			run->ready_hdr = h;
			if (h.length <= sizeof run->ready_payload && pl != NULL)
				memcpy(run->ready_payload, pl, h.length);
			free(pl);
		} else {
			CU_ASSERT_EQUAL(off, len);
		}
	}
}

static void
test_oversized_skipped(void)
{
	static const size_t steps[] = {1, 7, 10, 11, 333, 1009, 5000};
	struct frame_header hb = {.length = 1000, .stream_id = 3, .type = FRAME_TYPE_REQUEST};
	struct frame_decoder d;
	struct big_run run;
	uint8_t *buf, *next;
	size_t total, nlen, s, k, n, i;

	next = frame_encode(
	    5, FRAME_TYPE_REQUEST, 0, "0123456789abcdefghijklmnopqrstuvwxyz", 36, &nlen);
	total = FRAME_HEADER_SIZE + 1000 + nlen;
	buf = xmalloc(total);
	frame_header_pack(&hb, buf);
	for (i = 0; i < 1000; i++)
		buf[FRAME_HEADER_SIZE + i] = (uint8_t)i;
	memcpy(buf + FRAME_HEADER_SIZE + 1000, next, nlen);

	/* Fixed chunk sizes (steps[s]), then two chunks cut at every byte (k). */
	for (s = 0; s < ARRAY_SIZE(steps) + total + 1; s++) {
		memset(&run, 0, sizeof run);
		frame_decoder_init(&d, 100);
		if (s < ARRAY_SIZE(steps)) {
			for (k = 0; k < total; k += n) {
				n = total - k < steps[s] ? total - k : steps[s];
				big_feed(&d, buf + k, n, &run);
			}
		} else {
			k = s - ARRAY_SIZE(steps);
			big_feed(&d, buf, k, &run);
			big_feed(&d, buf + k, total - k, &run);
		}
		CU_ASSERT_EQUAL(run.too_big, 1);
		CU_ASSERT_EQUAL(run.too_big_hdr.length, 1000);
		CU_ASSERT_EQUAL(run.too_big_hdr.stream_id, 3);
		CU_ASSERT_FALSE(run.buffered_during_discard);
		CU_ASSERT_FALSE(run.idle_during_discard);
		CU_ASSERT_EQUAL(run.ready, 1);
		CU_ASSERT_EQUAL(run.ready_hdr.stream_id, 5);
		CU_ASSERT_EQUAL(run.ready_hdr.length, 36);
		CU_ASSERT_EQUAL(
		    memcmp(run.ready_payload, "0123456789abcdefghijklmnopqrstuvwxyz", 36), 0);
		CU_ASSERT_TRUE(frame_decoder_idle(&d));
		frame_decoder_free(&d);
	}
	free(next);
	free(buf);
}

/* TOO_BIG is reported right at the header; the next call skips and decodes what follows. */
static void
test_oversized_one_buffer(void)
{
	struct frame_header hb = {.length = 101, .stream_id = 9, .type = FRAME_TYPE_REQUEST};
	struct frame_decoder d;
	struct frame_header h;
	uint8_t buf[FRAME_HEADER_SIZE + 101 + FRAME_HEADER_SIZE + 100], *pl = NULL;
	size_t used = 0;

	memset(buf, 0x5a, sizeof buf);
	frame_header_pack(&hb, buf);
	hb.length = 100; /* exactly the limit: accepted */
	hb.stream_id = 11;
	frame_header_pack(&hb, buf + FRAME_HEADER_SIZE + 101);

	frame_decoder_init(&d, 100);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, buf, sizeof buf, &used, &h, &pl), FRAME_TOO_BIG);
	CU_ASSERT_EQUAL(used, FRAME_HEADER_SIZE);
	CU_ASSERT_EQUAL(h.length, 101);
	CU_ASSERT_EQUAL(h.stream_id, 9);
	CU_ASSERT_EQUAL(d.discard_left, 101);
	CU_ASSERT_PTR_NULL(d.payload);
	CU_ASSERT_FALSE(frame_decoder_idle(&d));

	CU_ASSERT_EQUAL(
	    frame_decoder_feed(&d, buf + used, sizeof buf - used, &used, &h, &pl), FRAME_READY);
	CU_ASSERT_EQUAL(used, 101 + FRAME_HEADER_SIZE + 100);
	CU_ASSERT_EQUAL(h.stream_id, 11);
	CU_ASSERT_EQUAL(h.length, 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
	CU_ASSERT_EQUAL(pl[0], 0x5a);
	CU_ASSERT_EQUAL(pl[99], 0x5a);
	CU_ASSERT_TRUE(frame_decoder_idle(&d));
	free(pl);
	frame_decoder_free(&d);
}

/* A 4 GiB announcement costs nothing: skipped without buffering, the decoder stays usable. */
static void
test_oversized_huge(void)
{
	struct frame_header hb = {.length = UINT32_MAX, .stream_id = 1};
	struct frame_decoder d;
	struct frame_header h;
	uint8_t hdr[FRAME_HEADER_SIZE], chunk[4096], *pl;
	size_t used;

	frame_header_pack(&hb, hdr);
	memset(chunk, 0, sizeof chunk);
	frame_decoder_init(&d, 1024 * 1024);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, hdr, sizeof hdr, &used, &h, &pl), FRAME_TOO_BIG);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, chunk, sizeof chunk, &used, &h, &pl), FRAME_MORE);
	CU_ASSERT_EQUAL(used, sizeof chunk);
	CU_ASSERT_EQUAL(d.discard_left, (uint64_t)UINT32_MAX - sizeof chunk);
	CU_ASSERT_EQUAL(d.payload_cap, 0);
	frame_decoder_free(&d);
}

static void
test_payload_growth(void)
{
	struct frame_header hb = {.length = 4u * 1024 * 1024, .stream_id = 1};
	struct frame_decoder d;
	struct frame_header h;
	uint8_t hdr[FRAME_HEADER_SIZE], *chunk, *pl = NULL;
	size_t used, fed, n;
	enum frame_result r;

	frame_header_pack(&hb, hdr);
	chunk = xcalloc(1, 100000);
	frame_decoder_init(&d, 8u * 1024 * 1024);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, hdr, sizeof hdr, &used, &h, &pl), FRAME_MORE);
	CU_ASSERT_PTR_NULL(d.payload); /* nothing allocated before payload bytes arrive */
	CU_ASSERT_EQUAL(d.payload_cap, 0);
	CU_ASSERT_FALSE(frame_decoder_idle(&d));

	CU_ASSERT_EQUAL(frame_decoder_feed(&d, chunk, 100, &used, &h, &pl), FRAME_MORE);
	CU_ASSERT_EQUAL(used, 100);
	CU_ASSERT_EQUAL(d.payload_have, 100);
	CU_ASSERT_PTR_NOT_NULL(d.payload);
	CU_ASSERT(d.payload_cap >= 100 && d.payload_cap <= 64 * 1024 + 1024);

	/* The buffer keeps within twice what arrived as it grows. */
	for (fed = 100; fed < 1000000; fed += n) {
		n = 100000;
		r = frame_decoder_feed(&d, chunk, n, &used, &h, &pl);
		CU_ASSERT_EQUAL(r, FRAME_MORE);
		CU_ASSERT(d.payload_cap >= fed + n && d.payload_cap <= 2 * (fed + n));
	}
	/* Finish the frame: the buffer ends exactly at the announced length. */
	while (fed < hb.length) {
		n = hb.length - fed < 100000 ? hb.length - fed : 100000;
		r = frame_decoder_feed(&d, chunk, n, &used, &h, &pl);
		CU_ASSERT_EQUAL(used, n);
		fed += n;
		if (fed < hb.length) {
			CU_ASSERT_EQUAL(r, FRAME_MORE);
			CU_ASSERT(d.payload_cap <= hb.length);
		} else {
			CU_ASSERT_EQUAL(r, FRAME_READY);
		}
	}
	CU_ASSERT_EQUAL(h.length, hb.length);
	CU_ASSERT_PTR_NOT_NULL(pl);
	CU_ASSERT_PTR_NULL(d.payload);
	CU_ASSERT_TRUE(frame_decoder_idle(&d));
	free(pl);

	/* Doubling stops at the announced length: 64 KiB, then 100000, not 128 KiB. */
	hb.length = 100000;
	frame_header_pack(&hb, hdr);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, hdr, sizeof hdr, &used, &h, &pl), FRAME_MORE);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, chunk, 65536, &used, &h, &pl), FRAME_MORE);
	CU_ASSERT_EQUAL(d.payload_cap, 65536);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, chunk, 1, &used, &h, &pl), FRAME_MORE);
	CU_ASSERT_EQUAL(d.payload_cap, 100000);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, chunk, 100000, &used, &h, &pl), FRAME_READY);
	CU_ASSERT_EQUAL(used, 100000 - 65537);
	free(pl);

	/* A small frame gets a buffer of exactly its size. */
	hb.length = 10;
	frame_header_pack(&hb, hdr);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, hdr, sizeof hdr, &used, &h, &pl), FRAME_MORE);
	CU_ASSERT_EQUAL(frame_decoder_feed(&d, chunk, 3, &used, &h, &pl), FRAME_MORE);
	CU_ASSERT_EQUAL(d.payload_cap, 10);

	/* Freeing mid-payload releases the partial buffer (LeakSanitizer checks). */
	frame_decoder_free(&d);
	CU_ASSERT_PTR_NULL(d.payload);
	free(chunk);
}

/* ---- stream framing ---- */

static void
test_stream_len_pack(void)
{
	static const uint8_t want[] = {0x00, 0xa0, 0x00, 0x01};
	uint8_t out[STREAM_LEN_SIZE];

	stream_len_pack(10u * 1024 * 1024 + 1, out);
	CU_ASSERT_EQUAL(memcmp(out, want, sizeof want), 0);
}

static void
test_stream_eof(void)
{
	static const uint8_t in[] = {0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0, 'x'};
	struct stream_decoder d;
	const uint8_t *data;
	size_t used, len;

	stream_decoder_init(&d, 0);
	CU_ASSERT_EQUAL(d.max_len, STREAM_FRAME_MAX);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in, sizeof in, &used, &data, &len), STREAM_DATA);
	CU_ASSERT_EQUAL(used, 6);
	CU_ASSERT_PTR_EQUAL(data, in + 4);
	CU_ASSERT_EQUAL(len, 2);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in + 6, 5, &used, &data, &len), STREAM_EOF);
	CU_ASSERT_EQUAL(used, 4);
	CU_ASSERT_TRUE(d.eof);
	CU_ASSERT_FALSE(d.failed);
	/* Nothing more is fine; any further byte is a protocol error, and it sticks. */
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in, 0, &used, &data, &len), STREAM_MORE);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in + 10, 1, &used, &data, &len), STREAM_ERROR);
	CU_ASSERT_TRUE(d.failed);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in, 0, &used, &data, &len), STREAM_ERROR);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in, 4, &used, &data, &len), STREAM_ERROR);

	/* A second zero-length frame after EOF is data after EOF too. */
	stream_decoder_init(&d, 0);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in + 6, 4, &used, &data, &len), STREAM_EOF);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in + 6, 4, &used, &data, &len), STREAM_ERROR);
}

static void
test_stream_too_long(void)
{
	uint8_t in[STREAM_LEN_SIZE + 64];
	struct stream_decoder d;
	const uint8_t *data;
	size_t used, len, i;

	memset(in, 'p', sizeof in);
	stream_len_pack(STREAM_FRAME_MAX + 1, in);

	/* Whole: refused after exactly the 4 length bytes, the payload untouched. */
	stream_decoder_init(&d, 0);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in, sizeof in, &used, &data, &len), STREAM_ERROR);
	CU_ASSERT_EQUAL(used, STREAM_LEN_SIZE);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_TRUE(d.failed);
	CU_ASSERT_EQUAL(d.left, 0);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in + 4, 10, &used, &data, &len), STREAM_ERROR);
	CU_ASSERT_EQUAL(used, 0);

	/* Bytewise: the fourth length byte is where it fails. */
	stream_decoder_init(&d, 0);
	for (i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(
		    stream_decoder_feed(&d, in + i, 1, &used, &data, &len), STREAM_MORE);
		CU_ASSERT_EQUAL(used, 1);
	}
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in + 3, 1, &used, &data, &len), STREAM_ERROR);
	CU_ASSERT_EQUAL(used, 1);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in + 4, 1, &used, &data, &len), STREAM_ERROR);

	/* A custom limit: 100 is fine, 101 is not. */
	stream_decoder_init(&d, 100);
	stream_len_pack(100, in);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in, sizeof in, &used, &data, &len), STREAM_DATA);
	CU_ASSERT_EQUAL(len, 64);
	stream_decoder_init(&d, 100);
	stream_len_pack(101, in);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in, sizeof in, &used, &data, &len), STREAM_ERROR);
	CU_ASSERT_EQUAL(used, STREAM_LEN_SIZE);
}

static void
test_stream_max_accepted(void)
{
	size_t total = STREAM_LEN_SIZE + STREAM_FRAME_MAX + STREAM_LEN_SIZE, used, len;
	uint8_t *in = xcalloc(1, total);
	struct stream_decoder d;
	const uint8_t *data;

	stream_len_pack(STREAM_FRAME_MAX, in);
	stream_decoder_init(&d, 0);
	CU_ASSERT_EQUAL(stream_decoder_feed(&d, in, total, &used, &data, &len), STREAM_DATA);
	CU_ASSERT_PTR_EQUAL(data, in + STREAM_LEN_SIZE);
	CU_ASSERT_EQUAL(len, STREAM_FRAME_MAX);
	CU_ASSERT_EQUAL(used, STREAM_LEN_SIZE + STREAM_FRAME_MAX);
	CU_ASSERT_EQUAL(
	    stream_decoder_feed(&d, in + used, total - used, &used, &data, &len), STREAM_EOF);
	free(in);
}

/* Decode buf fed in chunks ending at cuts[]; slices must lie in their chunk. Caller frees. */
static uint8_t *
stream_collect(const uint8_t *buf, const size_t *cuts, size_t ncuts, size_t *out_len, int *nslices,
    int *neof, bool *ok)
{
	struct stream_decoder d;
	const uint8_t *data;
	uint8_t *out = NULL;
	size_t start = 0, off, used, len, olen = 0, c;
	enum stream_result r;

	*ok = true;
	*nslices = 0;
	*neof = 0;
	stream_decoder_init(&d, 0);
	for (c = 0; c < ncuts && *ok; c++) {
		off = start;
		while (off < cuts[c] && *ok) {
			r = stream_decoder_feed(&d, buf + off, cuts[c] - off, &used, &data, &len);
			if (r == STREAM_DATA) {
				if (len == 0 || data < buf + off || data + len > buf + cuts[c])
					*ok = false;
				out = xrealloc(out, olen + len);
				memcpy(out + olen, data, len);
				olen += len;
				(*nslices)++;
			} else if (r == STREAM_EOF) {
				(*neof)++;
			} else if (r == STREAM_MORE) {
				*ok = off + used == cuts[c];
			} else {
				*ok = false;
			}
			off += used;
		}
		start = cuts[c];
	}
	*out_len = olen;
	return out;
}

static void
test_stream_slices(void)
{
	static const size_t sizes[] = {1, 5000, 3, 70000};
	size_t total = 0, plen = 0, i, j, k, olen, cuts[3];
	uint8_t *buf, *payload, *out;
	int nslices, neof;
	bool ok, all_ok = true;

	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		total += STREAM_LEN_SIZE + sizes[i];
	total += STREAM_LEN_SIZE;
	buf = xmalloc(total);
	payload = xmalloc(total);
	for (i = 0, k = 0; i < ARRAY_SIZE(sizes); i++) {
		stream_len_pack((uint32_t)sizes[i], buf + k);
		k += STREAM_LEN_SIZE;
		for (j = 0; j < sizes[i]; j++) {
			buf[k + j] = pattern(i, j);
			payload[plen++] = pattern(i, j);
		}
		k += sizes[i];
	}
	stream_len_pack(0, buf + k);

	/* A cut at every boundary up to the big frame, then a few inside it. */
	for (k = 0; k <= total; k += k < 6000 ? 1 : 997) {
		cuts[0] = k;
		cuts[1] = total;
		out = stream_collect(buf, cuts, 2, &olen, &nslices, &neof, &ok);
		if (!ok || neof != 1 || olen != plen || memcmp(out, payload, plen) != 0) {
			fprintf(stderr, "stream decode failed with a cut at %zu\n", k);
			all_ok = false;
		}
		free(out);
		if (!all_ok)
			break;
	}
	CU_ASSERT_TRUE(all_ok);
	free(payload);
	free(buf);
}

/* A 1 MiB frame in three chunks comes back as three slices, in order. */
static void
test_stream_three_chunks(void)
{
	size_t total = STREAM_LEN_SIZE + STREAM_WRITE_MAX, cuts[3], olen, i;
	uint8_t *buf = xmalloc(total), *out;
	int nslices, neof;
	bool ok;

	stream_len_pack(STREAM_WRITE_MAX, buf);
	for (i = 0; i < STREAM_WRITE_MAX; i++)
		buf[STREAM_LEN_SIZE + i] = pattern(1, i);
	cuts[0] = 300000;
	cuts[1] = 700001;
	cuts[2] = total;
	out = stream_collect(buf, cuts, 3, &olen, &nslices, &neof, &ok);
	CU_ASSERT_TRUE(ok);
	CU_ASSERT_EQUAL(nslices, 3);
	CU_ASSERT_EQUAL(neof, 0);
	CU_ASSERT_EQUAL(olen, STREAM_WRITE_MAX);
	CU_ASSERT(out != NULL && memcmp(out, buf + STREAM_LEN_SIZE, STREAM_WRITE_MAX) == 0);
	free(out);
	free(buf);
}

static int
make_pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

struct writer {
	int fd;
	const uint8_t *data;
	size_t len;
	int rc;
	int eof_rc;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;

	w->rc = stream_write_frames(w->fd, w->data, w->len);
	w->eof_rc = stream_write_frames(w->fd, NULL, 0);
	close(w->fd); /* the reader sees EOF even if we wrote too little */
	return NULL;
}

static void
test_stream_write_frames(void)
{
	size_t len = 2 * STREAM_WRITE_MAX + STREAM_WRITE_MAX / 2, got = 0, i, off;
	size_t want_len[] = {STREAM_WRITE_MAX, STREAM_WRITE_MAX, STREAM_WRITE_MAX / 2, 0};
	uint8_t *data = xmalloc(len), *in;
	size_t in_cap = len + 4 * STREAM_LEN_SIZE + 4096;
	struct writer w;
	pthread_t th;
	uint32_t flen;
	ssize_t n;
	int sv[2];

	for (i = 0; i < len; i++)
		data[i] = pattern(2, i);
	in = xmalloc(in_cap);
	CU_ASSERT_EQUAL_FATAL(make_pair(sv), 0);
	/* Non-blocking writer: write_all must ride out EAGAIN on a full socket buffer. */
	CU_ASSERT_EQUAL(fd_set_nonblock(sv[0], true), 0);
	w = (struct writer){.fd = sv[0], .data = data, .len = len, .rc = 1, .eof_rc = 1};
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, writer_main, &w), 0);
	/* Read to EOF; anything past the EOF frame would show up in got. */
	while (got < in_cap) {
		n = read(sv[1], in + got, in_cap - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	pthread_join(th, NULL);
	close(sv[1]);

	CU_ASSERT_EQUAL(w.rc, 0);
	CU_ASSERT_EQUAL(w.eof_rc, 0);
	CU_ASSERT_EQUAL(got, len + 4 * STREAM_LEN_SIZE);
	for (i = 0, off = 0; i < ARRAY_SIZE(want_len) && off + STREAM_LEN_SIZE <= got; i++) {
		flen = (uint32_t)in[off] << 24 | (uint32_t)in[off + 1] << 16 |
		       (uint32_t)in[off + 2] << 8 | in[off + 3];
		CU_ASSERT_EQUAL(flen, want_len[i]);
		off += STREAM_LEN_SIZE + flen;
	}
	if (got != len + 4 * STREAM_LEN_SIZE)
		goto out;
	CU_ASSERT_EQUAL(memcmp(in + 4, data, STREAM_WRITE_MAX), 0);
	CU_ASSERT_EQUAL(
	    memcmp(in + 8 + STREAM_WRITE_MAX, data + STREAM_WRITE_MAX, STREAM_WRITE_MAX), 0);
	CU_ASSERT_EQUAL(memcmp(in + 12 + 2 * STREAM_WRITE_MAX, data + 2 * STREAM_WRITE_MAX,
			    STREAM_WRITE_MAX / 2),
	    0);
out:
	free(in);
	free(data);
}

/* stream_read_frame takes exactly one frame, on blocking and non-blocking fds alike. */
static void
test_stream_read_frame(void)
{
	static const uint8_t wire[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 'X', 'Y', 'Z'};
	static const uint8_t empty[] = {0, 0, 0, 0};
	char buf[STREAM_HELLO_MAX], rest[16];
	int sv[2], nb;
	long r;

	for (nb = 0; nb < 2; nb++) {
		CU_ASSERT_EQUAL_FATAL(make_pair(sv), 0);
		CU_ASSERT_EQUAL(fd_set_nonblock(sv[1], nb), 0);
		CU_ASSERT_EQUAL(write_all(sv[0], wire, sizeof wire), 0);
		memset(buf, 0, sizeof buf);
		r = stream_read_frame(sv[1], buf, sizeof buf, time_mono_ms() + 5000);
		CU_ASSERT_EQUAL(r, 5);
		CU_ASSERT_EQUAL(memcmp(buf, "hello", 5), 0);
		CU_ASSERT_EQUAL(buf[5], 0);
		/* The bytes after the frame are still on the socket for the caller. */
		CU_ASSERT_EQUAL(recv(sv[1], rest, sizeof rest, MSG_DONTWAIT), 3);
		CU_ASSERT_EQUAL(memcmp(rest, "XYZ", 3), 0);

		/* A zero-length frame reads as length 0. */
		CU_ASSERT_EQUAL(write_all(sv[0], empty, sizeof empty), 0);
		CU_ASSERT_EQUAL(
		    stream_read_frame(sv[1], buf, sizeof buf, time_mono_ms() + 5000), 0);
		close(sv[0]);
		close(sv[1]);
	}

	/* Exactly max_len is accepted. */
	CU_ASSERT_EQUAL_FATAL(make_pair(sv), 0);
	CU_ASSERT_EQUAL(write_all(sv[0], wire, 9), 0);
	CU_ASSERT_EQUAL(stream_read_frame(sv[1], buf, 5, time_mono_ms() + 5000), 5);
	close(sv[0]);
	close(sv[1]);
}

static void
test_stream_read_frame_errors(void)
{
	static const uint8_t wire[] = {0, 0, 0x13, 0x88, 'p', 'a', 'y'}; /* 5000 */
	static const uint8_t part[] = {0, 0, 0, 4, 'a', 'b'};
	char buf[STREAM_HELLO_MAX], rest[16];
	int64_t t0, dt;
	int sv[2];

	/* Over max_len: refused without reading the payload. */
	CU_ASSERT_EQUAL_FATAL(make_pair(sv), 0);
	CU_ASSERT_EQUAL(write_all(sv[0], wire, sizeof wire), 0);
	CU_ASSERT_EQUAL(
	    stream_read_frame(sv[1], buf, sizeof buf, time_mono_ms() + 5000), -EMSGSIZE);
	CU_ASSERT_EQUAL(recv(sv[1], rest, sizeof rest, MSG_DONTWAIT), 3);
	CU_ASSERT_EQUAL(memcmp(rest, "pay", 3), 0);
	close(sv[0]);
	close(sv[1]);

	/* One byte over max_len is over too. */
	CU_ASSERT_EQUAL_FATAL(make_pair(sv), 0);
	CU_ASSERT_EQUAL(write_all(sv[0], "\0\0\0\5hello", 9), 0);
	CU_ASSERT_EQUAL(stream_read_frame(sv[1], buf, 4, time_mono_ms() + 5000), -EMSGSIZE);
	CU_ASSERT_EQUAL(recv(sv[1], rest, sizeof rest, MSG_DONTWAIT), 5);
	close(sv[0]);
	close(sv[1]);

	/* A silent peer on a blocking fd: the deadline still ends the wait. */
	CU_ASSERT_EQUAL_FATAL(make_pair(sv), 0);
	t0 = time_mono_ms();
	CU_ASSERT_EQUAL(stream_read_frame(sv[1], buf, sizeof buf, t0 + 100), -ETIMEDOUT);
	dt = time_mono_ms() - t0;
	CU_ASSERT(dt >= 90 && dt < 5000);

	/* A peer that stops mid-length, then mid-payload. */
	CU_ASSERT_EQUAL(write_all(sv[0], wire, 2), 0);
	CU_ASSERT_EQUAL(stream_read_frame(sv[1], buf, sizeof buf, time_mono_ms() + 50), -ETIMEDOUT);
	CU_ASSERT_EQUAL(write_all(sv[0], part, sizeof part), 0);
	CU_ASSERT_EQUAL(stream_read_frame(sv[1], buf, sizeof buf, time_mono_ms() + 50), -ETIMEDOUT);

	/* EOF mid-frame and EOF before any byte. */
	CU_ASSERT_EQUAL(write_all(sv[0], part, sizeof part), 0);
	close(sv[0]);
	CU_ASSERT_EQUAL(stream_read_frame(sv[1], buf, sizeof buf, time_mono_ms() + 5000), -EPIPE);
	close(sv[1]);
	CU_ASSERT_EQUAL_FATAL(make_pair(sv), 0);
	close(sv[0]);
	CU_ASSERT_EQUAL(stream_read_frame(sv[1], buf, sizeof buf, time_mono_ms() + 5000), -EPIPE);
	close(sv[1]);
}

static const struct unit_case cases[] = {
    {"header pack/unpack and byte layout", test_header_layout},
    {"frame_encode layout", test_encode},
    {"decode with a cut at every byte", test_decode_every_split},
    {"decode one byte at a time", test_decode_bytewise},
    {"decode large payloads in odd chunks", test_decode_large_chunks},
    {"oversized frame skipped across chunks", test_oversized_skipped},
    {"oversized frame then normal frame in one buffer", test_oversized_one_buffer},
    {"4 GiB announcement skipped without buffering", test_oversized_huge},
    {"payload buffer grows with bytes received", test_payload_growth},
    {"stream length layout", test_stream_len_pack},
    {"stream EOF and data after EOF", test_stream_eof},
    {"stream length over the limit", test_stream_too_long},
    {"stream frame of exactly 10 MiB", test_stream_max_accepted},
    {"stream slices across chunk boundaries", test_stream_slices},
    {"stream 1 MiB frame in three chunks", test_stream_three_chunks},
    {"stream_write_frames splits at 1 MiB", test_stream_write_frames},
    {"stream_read_frame reads exactly one frame", test_stream_read_frame},
    {"stream_read_frame errors and deadline", test_stream_read_frame_errors},
    {NULL, NULL},
};

int
main(void)
{
	/* A hang (a read that ignores the deadline) fails the run instead of stalling CI. */
	alarm(30);
	return unit_main("frame", cases);
}
