/*
 * frame.h: the two wire framings vmshim speaks, as pure byte-level codecs.
 *
 * ttrpc framing (docs/CONTRACT.md 4): a 10-byte header (u32 length, u32 stream id, u8 type, u8
 * flags, big-endian) then the payload. The decoder is incremental: it is fed arbitrary chunks (a
 * frame may arrive one byte at a time) and reports at most one event per call. A header
 * whose length exceeds the decoder's limit is reported as FRAME_TOO_BIG and its payload is
 * then skipped as it arrives, never buffered, so the caller can answer RESOURCE_EXHAUSTED and
 * keep the connection. The payload buffer grows with the bytes actually received, so a peer
 * that announces a large frame and sends little costs little memory.
 *
 * Stream framing (docs/PROTOCOL.md 3): u32 big-endian length then that many bytes; a zero-length
 * frame is EOF for the direction that sent it; a length over 10 MiB is a protocol error detected
 * before anything is allocated; writers emit frames of at most 1 MiB. The stream decoder
 * never allocates: data is handed back as slices of the caller's input.
 *
 * No I/O, no threads, no libevent here: the loop, the workers, the agent and the fuzzers all
 * drive these the same way. A decoder belongs to one connection and one thread at a time.
 */
#ifndef VMSHIM_FRAME_H
#define VMSHIM_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- ttrpc framing ---- */

#define FRAME_HEADER_SIZE 10

#define FRAME_TYPE_REQUEST  1
#define FRAME_TYPE_RESPONSE 2
#define FRAME_TYPE_DATA	    3

#define FRAME_FLAG_REMOTE_CLOSED 0x01
#define FRAME_FLAG_REMOTE_OPEN	 0x02
#define FRAME_FLAG_NO_DATA	 0x04

struct frame_header {
	uint32_t length;
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
};

void frame_header_pack(const struct frame_header *h, uint8_t out[FRAME_HEADER_SIZE]);
void frame_header_unpack(const uint8_t in[FRAME_HEADER_SIZE], struct frame_header *h);

/*
 * Encode one frame (header + payload) into a new buffer of FRAME_HEADER_SIZE + len bytes,
 * stored in *out_len. The header's length field is set from len. Caller frees.
 */
uint8_t *frame_encode(uint32_t stream_id, uint8_t type, uint8_t flags, const void *payload,
    size_t len, size_t *out_len);

enum frame_result {
	FRAME_MORE,    /* all input consumed, no complete event yet */
	FRAME_READY,   /* a whole frame: *hdr and *payload (caller frees) are set */
	FRAME_TOO_BIG, /* *hdr is set; its payload is being discarded as it arrives */
};

struct frame_decoder {
	size_t max_payload;
	uint8_t hdr_buf[FRAME_HEADER_SIZE];
	size_t hdr_have;
	struct frame_header cur;
	uint8_t *payload; /* NULL until payload bytes arrive */
	size_t payload_have;
	size_t payload_cap;
	uint64_t discard_left; /* bytes of an oversized payload still to skip */
};

void frame_decoder_init(struct frame_decoder *d, size_t max_payload);
void frame_decoder_free(struct frame_decoder *d);
/*
 * Consume input from buf[0..len). Stops after the first event; *consumed says how much was
 * used, so the caller calls again with the rest. On FRAME_READY the payload (NULL when the
 * length is 0) passes to the caller, who frees it.
 */
enum frame_result frame_decoder_feed(struct frame_decoder *d, const uint8_t *buf, size_t len,
    size_t *consumed, struct frame_header *hdr, uint8_t **payload);
/* True when the decoder sits between frames (no partial header or payload pending). */
bool frame_decoder_idle(const struct frame_decoder *d);

/* ---- stream framing ---- */

#define STREAM_LEN_SIZE	 4
#define STREAM_FRAME_MAX (10u * 1024 * 1024) /* larger is a protocol error */
#define STREAM_WRITE_MAX (1u * 1024 * 1024)  /* what we send per frame */
#define STREAM_HELLO_MAX 4096		     /* the first frame's JSON header */

void stream_len_pack(uint32_t len, uint8_t out[STREAM_LEN_SIZE]);

/*
 * The two directions of one stream connection as either end sees them, under the same names
 * in the shim (shim/io-bridge.c) and the agent (contrib/agent/stream.c): tx is what this end
 * sends on the socket, rx what it receives. Each moves forward only; the socket is closed
 * once tx has sent its EOF and rx has received the peer's, or earlier when the stream fails
 * or stays half-closed too long, and both directions are then CLOSED.
 */
enum stream_tx {
	STREAM_TX_OPEN,	      /* data frames may still be sent */
	STREAM_TX_EOF_QUEUED, /* our EOF frame is queued behind the last data */
	STREAM_TX_EOF_SENT,   /* our EOF frame was written to the socket */
	STREAM_TX_CLOSED,     /* the socket is closed */
};

enum stream_rx {
	STREAM_RX_OPEN,	  /* the peer's data frames may still arrive */
	STREAM_RX_EOF,	  /* the peer's EOF frame arrived */
	STREAM_RX_CLOSED, /* the socket is closed */
};

enum stream_result {
	STREAM_MORE,  /* all input consumed */
	STREAM_DATA,  /* data, data_len: a slice of the current frame's payload */
	STREAM_EOF,   /* a zero-length frame: the peer sends nothing more */
	STREAM_ERROR, /* protocol error (length over the limit, data after EOF) */
};

struct stream_decoder {
	uint32_t max_len;
	uint8_t len_buf[STREAM_LEN_SIZE];
	size_t len_have;
	uint32_t left; /* payload bytes of the current frame still to come */
	bool eof;
	bool failed;
};

/* max_len 0 means STREAM_FRAME_MAX. */
void stream_decoder_init(struct stream_decoder *d, uint32_t max_len);
/*
 * Consume input; stops after each event. STREAM_DATA slices point into buf and are valid
 * until buf changes. After STREAM_ERROR every call returns STREAM_ERROR.
 */
enum stream_result stream_decoder_feed(struct stream_decoder *d, const uint8_t *buf, size_t len,
    size_t *consumed, const uint8_t **data, size_t *data_len);
/*
 * Payload bytes of the current frame still to come (0 between frames): a caller may move them
 * without looking at them (splice) and then account for them with stream_decoder_skip().
 */
uint32_t stream_decoder_payload_left(const struct stream_decoder *d);
/* n (at most stream_decoder_payload_left()) payload bytes were consumed outside the decoder. */
void stream_decoder_skip(struct stream_decoder *d, uint32_t n);

/*
 * Read one whole length-prefixed frame of at most max_len bytes from a blocking-style fd with
 * a monotonic deadline (the stream's first "hello" frame). Returns the length (>= 0) with the
 * payload in buf, or -errno (-EMSGSIZE over max_len, -ETIMEDOUT, -EPIPE on EOF).
 */
long stream_read_frame(int fd, void *buf, size_t max_len, int64_t deadline_ms);
/* Write data as frames of at most STREAM_WRITE_MAX (len 0 writes the EOF frame). 0 or -errno. */
int stream_write_frames(int fd, const void *data, size_t len);

#endif
