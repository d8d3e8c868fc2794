/*
 * io.h: the stdio data plane of one process, between host FIFOs/files and guest streams.
 *
 * Two phases, so that nothing blocks the loop thread:
 *  - io_prepare() runs on a worker: it opens the host FIFOs/files and connects one guest stream
 *    per stdio stream (transport_connect to the agent's stream port, then the JSON hello frame of
 *    docs/PROTOCOL.md), all bounded by a deadline. It returns plain descriptors.
 *  - io_start() runs on the loop thread: it bridges those descriptors with libevent, with
 *    backpressure both ways and a fixed memory bound per stream.
 * EOF is always a zero-length frame, never a shutdown() or a close (which can overtake the last
 * bytes in flight): the FIFO's EOF or
 * io_close_stdin() sends it on stdin; the guest's EOF on stdout/stderr ends the host writer only
 * after every byte before it is written. A stream's descriptors are closed exactly once, when
 * both directions have seen EOF (or the stream failed, or the half-closed timeout fired).
 * on_output_done runs on the loop thread once, when stdout and stderr are both finished
 * (every byte written to the host side, or failed): the task code publishes the exit only then.
 * Everything but io_prepare()/io_prepared_free() is loop-thread only.
 */
#ifndef VMSHIM_IO_H
#define VMSHIM_IO_H

#include <event2/event.h>
#include <stdbool.h>

#include "status.h"
#include "transport.h"

struct io_spec {
	const char *id;
	const char *exec_id;	 /* "" for the init process */
	bool terminal;		 /* one output stream (stdout), no stderr */
	const char *stdin_path;	 /* "" or NULL: none */
	const char *stdout_path; /* FIFO or regular file; "" or NULL: none */
	const char *stderr_path;
};

struct io_prepared;
struct io_streams;

/*
 * Worker thread. stream_ep is the agent's stream endpoint (uds:PATH:1025 or vsock:CID:1025).
 * Which guest streams get connected follows which paths are set. NULL with *st on failure
 * (nothing left open).
 */
struct io_prepared *io_prepare(const struct io_spec *spec, const struct endpoint *stream_ep,
    int timeout_ms, struct status *st);
/* Which guest streams io_prepare connected (what the agent must be told to expect). */
void io_prepared_streams(const struct io_prepared *p, bool *in, bool *out, bool *err);
void io_prepared_free(struct io_prepared *p);

/* Loop thread: takes ownership of p and starts bridging. */
struct io_streams *io_start(
    struct event_base *base, struct io_prepared *p, void (*on_output_done)(void *arg), void *arg);
/*
 * CloseIO: stop reading the stdin FIFO after the bytes it holds right now (containerd closes
 * its writer, then calls CloseIO), send all of them, then the EOF frame. Nothing is dropped.
 */
void io_close_stdin(struct io_streams *s);
/* True once stdout and stderr are finished (on_output_done has run or will run now). */
bool io_output_done(const struct io_streams *s);
/*
 * The process has exited (the agent said so): its output must now finish within the
 * half-closed timeout, renewed while the host keeps taking bytes. Past it the unfinished
 * output streams are failed (buffered bytes dropped, logged) and on_output_done runs, so a
 * runtime that never reads its FIFO cannot hold the exit back forever. Idempotent.
 */
void io_exit_seen(struct io_streams *s);
/*
 * The agent reaped the process but still has output for us (its exit follows that output):
 * the same deadline starts, renewed while the host takes bytes or nothing waits for it. Past
 * it the host side of each stream the host left bytes in is closed (those bytes dropped,
 * logged) and the guest stream is read and discarded to its EOF, so the agent can finish and
 * report the exit; on_output_done runs at that EOF. io_exit_seen() later arms one more
 * deadline for the EOF. Idempotent; nothing is published here.
 */
void io_exit_pending(struct io_streams *s);
/* Tear down now (Delete, shutdown): every descriptor closed once; on_output_done not called. */
void io_free(struct io_streams *s);

/* Bytes currently buffered by all live streams (for tests, benchmarks and RSS bounds). */
size_t io_buffered_bytes(void);

/*
 * Additions (io-bridge.c).
 *
 * Memory bound: each stream buffers at most IO_STREAM_BUFFER_MAX bytes for its sink (stdin:
 * framed bytes waiting for the guest socket; stdout/stderr: payload waiting for the host FIFO
 * or file). A source is read only while a whole read (IO_READ_CHUNK plus a length prefix)
 * still fits, so the bound is never exceeded; past it the source is simply not read and the
 * kernel's socket or pipe buffers push back on the writer at the other end. On top of that one
 * io_streams holds one IO_READ_CHUNK scratch buffer for guest reads.
 */
#define IO_READ_CHUNK		  (64u * 1024) /* one read from a source; stdin frames are <= this */
#define IO_STREAM_BUFFER_MAX	  (1024u * 1024) /* per stream, see above */
#define IO_HALF_CLOSED_TIMEOUT_MS 30000		 /* a stream half-closed this long is closed */

/* Change the half-closed timeout for streams started afterwards (tests); ms <= 0 restores it. */
void io_set_half_closed_timeout_ms(int ms);

#endif
