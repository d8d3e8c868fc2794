/*
 * fuzz_frame.c: libFuzzer target for the ttrpc frame decoder (common/frame.c).
 *
 * The input is raw bytes from a peer. A reference model written from docs/CONTRACT.md 4 (10-byte
 * header, big-endian length, oversized payloads reported then skipped) predicts the events; the
 * real decoder must produce exactly those events whether the input arrives whole, in random cuts
 * (seeded from the input) or, up to 1 KiB, one byte at a time; it must never buffer more than
 * a frame's announced length or more than it received, and must end idle exactly when the
 * model does.
 * Every whole frame must re-encode (frame_encode) to the very bytes it came from.
 *
 * Two limits are used: 4096 bytes, so that oversized frames and the skipping of their
 * payload are reached with small inputs, and 1 MiB, where a large announced length with
 * little data behind it must stay cheap. The target owns every payload the decoder hands
 * out and frees it before the next event.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"

#define FUZZ_FRAME_SMALL_MAX 4096u
#define FUZZ_FRAME_LARGE_MAX (1024u * 1024)

enum frame_cut {
	CUT_WHOLE,
	CUT_RANDOM,
	CUT_BYTES,
};

/* One event the model expects: READY (payload at data + off) or TOO_BIG. */
struct frame_event {
	enum frame_result kind;
	struct frame_header hdr;
	size_t off;
};

/* The model: fill ev (room for size / 10 + 1 events), return the count; *idle at the end. */
static size_t
frame_model(const uint8_t *data, size_t size, size_t max, struct frame_event *ev, bool *idle)
{
	size_t off = 0, n = 0, skip;
	struct frame_header h;

	*idle = false;
	while (size - off >= FRAME_HEADER_SIZE) {
		h.length = fuzz_be32(data + off);
		h.stream_id = fuzz_be32(data + off + 4);
		h.type = data[off + 8];
		h.flags = data[off + 9];
		off += FRAME_HEADER_SIZE;
		ev[n].hdr = h;
		ev[n].off = off;
		if (h.length > max) {
			ev[n++].kind = FRAME_TOO_BIG;
			skip = size - off < h.length ? size - off : h.length;
			off += skip;
			if (skip < h.length)
				return n; /* still skipping */
			continue;
		}
		if (size - off < h.length)
			return n; /* a partial payload */
		ev[n++].kind = FRAME_READY;
		off += h.length;
	}
	*idle = off == size;
	return n;
}

/* Check that a whole frame re-encodes to the bytes it was decoded from. */
static void
frame_check_encode(const uint8_t *data, const struct frame_event *e)
{
	uint8_t *enc, packed[FRAME_HEADER_SIZE];
	size_t len;

	enc = frame_encode(
	    e->hdr.stream_id, e->hdr.type, e->hdr.flags, data + e->off, e->hdr.length, &len);
	fuzz_check(len == FRAME_HEADER_SIZE + (size_t)e->hdr.length, "encoded length %zu", len);
	fuzz_check(memcmp(enc, data + e->off - FRAME_HEADER_SIZE, len) == 0,
	    "frame at %zu does not re-encode to its bytes", e->off);
	frame_header_pack(&e->hdr, packed);
	fuzz_check(memcmp(packed, enc, FRAME_HEADER_SIZE) == 0, "header pack differs");
	free(enc);
}

/* Compare one decoder event with the model's, then release its payload. */
static void
frame_check_event(const uint8_t *data, const struct frame_event *want, enum frame_result got,
    const struct frame_header *hdr, uint8_t *payload)
{
	fuzz_check(got == want->kind, "event kind %d, model %d", got, want->kind);
	fuzz_check(hdr->length == want->hdr.length && hdr->stream_id == want->hdr.stream_id &&
		       hdr->type == want->hdr.type && hdr->flags == want->hdr.flags,
	    "header differs from the model");
	if (got == FRAME_TOO_BIG || hdr->length == 0)
		fuzz_check(payload == NULL, "payload handed out for an empty or oversized frame");
	else
		fuzz_check(payload != NULL && memcmp(payload, data + want->off, hdr->length) == 0,
		    "payload differs from the input");
	free(payload);
}

/* Decode the input cut as `cut` says and check it against the model's events. */
static void
frame_run(const uint8_t *data, size_t size, size_t max, enum frame_cut cut,
    const struct frame_event *ev, size_t nev, bool idle)
{
	struct frame_decoder d;
	struct frame_header hdr;
	struct fuzz_rng rng;
	enum frame_result r;
	uint8_t *payload;
	size_t pos = 0, chunk, cpos, used, k = 0;

	fuzz_rng_init(&rng, data, size);
	frame_decoder_init(&d, max);
	while (pos < size) {
		if (cut == CUT_WHOLE)
			chunk = size - pos;
		else if (cut == CUT_BYTES)
			chunk = 1;
		else
			chunk = fuzz_chunk_len(&rng, size - pos);
		for (cpos = 0; cpos < chunk; cpos += used) {
			used = 0;
			r = frame_decoder_feed(
			    &d, data + pos + cpos, chunk - cpos, &used, &hdr, &payload);
			fuzz_check(used <= chunk - cpos, "consumed %zu of %zu", used, chunk - cpos);
			/* A frame's buffer never outgrows its length nor what was received. */
			fuzz_check(d.payload_cap <= d.cur.length || d.payload_cap == 0,
			    "buffer %zu for a %u-byte frame", d.payload_cap, d.cur.length);
			fuzz_check(d.payload_have <= d.payload_cap, "have %zu cap %zu",
			    d.payload_have, d.payload_cap);
			fuzz_check(d.payload_cap <= 64 * 1024 || d.payload_cap < 2 * d.payload_have,
			    "buffer %zu for %zu bytes received", d.payload_cap, d.payload_have);
			if (r == FRAME_MORE) {
				fuzz_check(used == chunk - cpos, "MORE left input unread");
				fuzz_check(payload == NULL, "MORE with a payload");
				continue;
			}
			fuzz_check(used > 0, "an event without consuming input");
			fuzz_check(k < nev, "event %zu beyond the model's %zu", k, nev);
			frame_check_event(data, &ev[k], r, &hdr, payload);
			k++;
		}
		pos += chunk;
	}
	fuzz_check(k == nev, "%zu events, model %zu (cut %d)", k, nev, cut);
	fuzz_check(
	    frame_decoder_idle(&d) == idle, "idle %d, model %d", frame_decoder_idle(&d), idle);
	frame_decoder_free(&d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_event *ev = xcalloc(size / FRAME_HEADER_SIZE + 1, sizeof *ev);
	size_t nev, k;
	bool idle;

	nev = frame_model(data, size, FUZZ_FRAME_SMALL_MAX, ev, &idle);
	for (k = 0; k < nev; k++)
		if (ev[k].kind == FRAME_READY)
			frame_check_encode(data, &ev[k]);
	frame_run(data, size, FUZZ_FRAME_SMALL_MAX, CUT_WHOLE, ev, nev, idle);
	frame_run(data, size, FUZZ_FRAME_SMALL_MAX, CUT_RANDOM, ev, nev, idle);
	/* Byte by byte costs a call per byte; random cuts cover longer inputs. */
	if (size <= 1024)
		frame_run(data, size, FUZZ_FRAME_SMALL_MAX, CUT_BYTES, ev, nev, idle);

	nev = frame_model(data, size, FUZZ_FRAME_LARGE_MAX, ev, &idle);
	frame_run(data, size, FUZZ_FRAME_LARGE_MAX, CUT_WHOLE, ev, nev, idle);
	frame_run(data, size, FUZZ_FRAME_LARGE_MAX, CUT_RANDOM, ev, nev, idle);
	free(ev);
	return 0;
}
