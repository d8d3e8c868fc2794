/*
 * fuzz_stream.c: libFuzzer target for the stdio stream framing (common/frame.c, docs/PROTOCOL.md
 * 3).
 *
 * The input is what a guest sends on a stream connection. A reference model of docs/PROTOCOL.md 3
 * (u32 big-endian length, a zero length is EOF, anything after EOF or a length over the
 * limit fails the stream) predicts the data bytes and where EOF and the error fall; the
 * decoder must match it whole, in random cuts (seeded from the input) and, up to 1 KiB, byte
 * by byte, hand out only slices of the input it was given, and keep failing once it has
 * failed. The limits used are 4096 (so oversized lengths are cheap to reach) and the default
 * 10 MiB.
 *
 * stream_read_frame, which reads a stream's first ("hello") frame, is run over a socketpair
 * holding the start of the input followed by EOF: its answer is predictable from the bytes.
 * The target allocates only its trace buffers and frees them before returning.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "fuzz.h"

#define FUZZ_STREAM_SMALL_MAX 4096u
#define FUZZ_STREAM_SOCK_MAX  8192u /* input bytes written to the socketpair */

enum stream_cut {
	CUT_WHOLE,
	CUT_RANDOM,
	CUT_BYTES,
};

/* What a decoding produced: the data bytes in order, and where EOF and the error came. */
struct stream_trace {
	uint8_t *data;
	size_t len;
	size_t eof_at; /* data length when EOF was seen; SIZE_MAX if never */
	size_t err_at;
};

static void
stream_trace_init(struct stream_trace *t, size_t size)
{
	t->data = xmalloc(size);
	t->len = 0;
	t->eof_at = SIZE_MAX;
	t->err_at = SIZE_MAX;
}

/* The model, straight from docs/PROTOCOL.md 3. */
static void
stream_model(const uint8_t *data, size_t size, uint32_t max, struct stream_trace *t)
{
	size_t off = 0, n;
	uint32_t flen;

	while (off < size) {
		if (t->eof_at != SIZE_MAX) {
			t->err_at = t->len;
			return;
		}
		if (size - off < STREAM_LEN_SIZE)
			return; /* a partial length */
		flen = fuzz_be32(data + off);
		off += STREAM_LEN_SIZE;
		if (flen == 0) {
			t->eof_at = t->len;
			continue;
		}
		if (flen > max) {
			t->err_at = t->len;
			return;
		}
		n = size - off < flen ? size - off : flen;
		memcpy(t->data + t->len, data + off, n);
		t->len += n;
		off += n;
	}
}

/* Decode the input cut as `cut` says into t, checking each call's contract. */
static void
stream_run(
    const uint8_t *data, size_t size, uint32_t max, enum stream_cut cut, struct stream_trace *t)
{
	struct stream_decoder d;
	struct fuzz_rng rng;
	enum stream_result r;
	const uint8_t *slice, *in;
	size_t pos = 0, chunk, cpos, used, slen;

	fuzz_rng_init(&rng, data, size);
	stream_decoder_init(&d, max);
	while (pos < size && t->err_at == SIZE_MAX) {
		if (cut == CUT_WHOLE)
			chunk = size - pos;
		else if (cut == CUT_BYTES)
			chunk = 1;
		else
			chunk = fuzz_chunk_len(&rng, size - pos);
		for (cpos = 0; cpos < chunk; cpos += used) {
			in = data + pos + cpos;
			r = stream_decoder_feed(&d, in, chunk - cpos, &used, &slice, &slen);
			fuzz_check(used <= chunk - cpos, "consumed %zu of %zu", used, chunk - cpos);
			if (r == STREAM_ERROR) {
				t->err_at = t->len;
				/* Failed for good: nothing more is consumed. */
				r = stream_decoder_feed(&d, in, chunk - cpos, &used, &slice, &slen);
				fuzz_check(
				    r == STREAM_ERROR && used == 0, "a failed stream recovered");
				break;
			}
			fuzz_check(used > 0, "no progress (result %d)", r);
			if (r == STREAM_MORE) {
				fuzz_check(used == chunk - cpos, "MORE left input unread");
			} else if (r == STREAM_EOF) {
				fuzz_check(t->eof_at == SIZE_MAX, "a second EOF");
				t->eof_at = t->len;
			} else {
				fuzz_check(r == STREAM_DATA, "unknown result %d", r);
				fuzz_check(slen > 0 && slice >= in && slice + slen == in + used,
				    "a DATA slice that is not the end of the consumed input");
				memcpy(t->data + t->len, slice, slen);
				t->len += slen;
			}
		}
		pos += chunk;
	}
}

/* Decode every way and compare each trace with the model. */
static void
stream_check(const uint8_t *data, size_t size, uint32_t max)
{
	static const enum stream_cut cuts[] = {CUT_WHOLE, CUT_RANDOM, CUT_BYTES};
	struct stream_trace want, got;
	size_t i;

	stream_trace_init(&want, size);
	stream_model(data, size, max != 0 ? max : STREAM_FRAME_MAX, &want);
	for (i = 0; i < ARRAY_SIZE(cuts); i++) {
		if (cuts[i] == CUT_BYTES && size > 1024)
			continue; /* a call per byte: keep it to small inputs */
		stream_trace_init(&got, size);
		stream_run(data, size, max, cuts[i], &got);
		fuzz_check(got.len == want.len && memcmp(got.data, want.data, got.len) == 0,
		    "data differs from the model (cut %d: %zu bytes, model %zu)", cuts[i], got.len,
		    want.len);
		fuzz_check(got.eof_at == want.eof_at && got.err_at == want.err_at,
		    "EOF/error differ from the model (cut %d)", cuts[i]);
		free(got.data);
	}
	free(want.data);
}

/* stream_read_frame over a socket holding the start of the input, then EOF. */
static void
stream_check_read_frame(const uint8_t *data, size_t size)
{
	size_t n = size < FUZZ_STREAM_SOCK_MAX ? size : FUZZ_STREAM_SOCK_MAX;
	uint8_t *buf = xmalloc(STREAM_HELLO_MAX);
	long want, got;
	uint32_t flen;
	int fds[2];

	if (n < STREAM_LEN_SIZE) {
		want = -EPIPE;
	} else {
		flen = fuzz_be32(data);
		if (flen > STREAM_HELLO_MAX)
			want = -EMSGSIZE;
		else if (n - STREAM_LEN_SIZE < flen)
			want = -EPIPE;
		else
			want = (long)flen;
	}
	fuzz_socket_with(data, n, fds);
	got = stream_read_frame(fds[0], buf, STREAM_HELLO_MAX, time_mono_ms() + 10000);
	fuzz_check(got == want, "stream_read_frame returned %ld, expected %ld", got, want);
	if (got > 0)
		fuzz_check(
		    memcmp(buf, data + STREAM_LEN_SIZE, (size_t)got) == 0, "hello payload differs");
	close(fds[0]);
	close(fds[1]);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	stream_check(data, size, FUZZ_STREAM_SMALL_MAX);
	stream_check(data, size, 0);
	stream_check_read_frame(data, size);
	return 0;
}
