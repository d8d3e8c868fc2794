/*
 * stream.h: the internal header of the stream port, shared by stream*.c only, in one section
 * per file.
 *
 * stream.c owns each struct stream (its life, hello, socket events and what the process table
 * asks of it); stream-output.c moves a process's stdout/stderr from its pipe to the socket;
 * stream-input.c moves stdin from the socket to the pipe. Everything runs on the loop thread.
 */
#ifndef VMSHIM_AGENT_STREAM_H
#define VMSHIM_AGENT_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "agent.h"
#include "frame.h"
#include "ptimer.h"

#define STREAM_READ_CHUNK (256 * 1024)
/* Detaching an output pipe reads what it holds, but never more than this (a busy writer). */
#define STREAM_DETACH_MAX (64u * STREAM_READ_CHUNK)
/* Output waiting in the pipe up to this much is copied (one read, one send), more is spliced. */
#define STREAM_COPY_MAX (32u * 1024)
/* One pipe callback moves at most this much, so a busy stream cannot starve the loop. */
#define STREAM_TURN_MAX (4u * STREAM_WRITE_MAX)
/*
 * A frame smaller than this, from a writer still attached, starts a batching window: the pipe
 * is read again STREAM_BATCH_US later, so a writer of small lines costs one wake-up, one
 * frame and a few calls per window instead of per line. The pipe's EOF is never waited for:
 * a writer gone (POLLHUP) ends batching at once.
 */
#define STREAM_BATCH_MIN (64u * 1024)
#define STREAM_BATCH_US	 500
/*
 * A pipe found holding this much (half of STREAM_PIPE_SIZE) has a writer that outruns us, not
 * a slow one: the small frame that may follow its frame starts no batching window.
 */
#define STREAM_BULK_MIN (512u * 1024)
/* The process's pipes are enlarged to this, so frames can be filled from what waits. */
#define STREAM_PIPE_SIZE (1024 * 1024)
/*
 * The frame pipe (stream-output.c): a frame bigger than it crosses it in steps. A pipe's
 * slots count against its user's pipe-user-pages-soft for its whole life, full or empty, and
 * a container's root shares the agent's account: a quarter of STREAM_PIPE_SIZE, which moved
 * 1 MiB frames as fast as a 1 MiB frame pipe did (docs/PERFORMANCE.md).
 */
#define STREAM_FRAME_PIPE_SIZE (256 * 1024)

enum stream_phase {
	STREAM_HELLO,
	STREAM_ACTIVE,
};

struct stream {
	LIST_ENTRY(stream) entry;
	enum stream_phase phase;
	struct bufferevent *bev; /* NULL once the socket is closed */
	struct stream_decoder dec;
	struct event *timer; /* hello deadline, then half-closed timeout */

	struct proc *p; /* referenced */
	enum stdio_kind kind;
	char *id;
	char *exec_id;
	bool orphaned; /* the process was removed */

	int pipe_fd;
	struct event *pipe_ev;
	bool pipe_paused;	  /* output: stopped reading the pipe for backpressure */
	bool pipe_closed;	  /* the pipe end is closed (EOF, detached, stdin closed) */
	struct evbuffer *pending; /* stdin: bytes the pipe did not take yet */
	bool input_close;	  /* stdin: close the pipe once pending drained */
	bool discard;		  /* stdin: the process closed its stdin; drop data */
	int last_in;		  /* stdin: the last byte given to the pipe (-1: none) */
	bool pty_wait; /* terminal (oci): no pty master yet, stream_set_pty() brings it */

	/* Output straight from the pipe to the socket while the bufferevent's queue is empty. */
	bool direct;		 /* the pipe is a pipe: FIONREAD and splice apply */
	bool no_splice;		 /* splice was refused (or VMSHIM_IO_COPY): copy instead */
	uint32_t splice_left;	 /* payload of the frame on the wire not yet in the socket */
	uint32_t frame_held;	 /* ... of which in the frame pipe (the rest: the pipe) */
	int frame_rd, frame_wr;	 /* the frame pipe (-1: none yet) */
	struct event *sock_ev;	 /* the socket is writable again (direct path only) */
	struct ptimer *batch_tm; /* the batching window ends: read the pipe again */
	bool bulk;		 /* the last frame found STREAM_BULK_MIN: do not batch its tail */
	/* Input: frame payloads spliced from the socket into the pipe (a real pipe, no copy). */
	bool splice_in;
	bool in_parked;	  /* the pipe is full: the socket is not read until it takes more */
	bool in_hdr_only; /* big frames come: read only the next header, splice its payload */

	enum stream_tx tx; /* OPEN, EOF_QUEUED, EOF_SENT once flushed, CLOSED (frame.h) */
	enum stream_rx rx; /* OPEN, EOF, CLOSED */
	bool done_reported;
	bool freeing; /* the free is scheduled for a later loop turn */
};

/* ---- stream.c ---- */

/* Decide what is finished: report output done, close the socket, free. */
void stream_check(struct stream *s);
/* Close the pipe end; a terminal's stdin is ended with VEOF, since the pty stays open. */
void stream_close_pipe(struct stream *s);
/* Close the socket (the fd is closed here, once). */
void stream_close_socket(struct stream *s);
/* The socket hit EOF or an error: the stream failed. */
void stream_event_cb(struct bufferevent *bev, short what, void *arg);
/* The stream failed (protocol error or the peer vanished): drop the socket. */
void stream_fail(struct stream *s, const char *why);
/* Queue our one EOF frame. */
void stream_send_eof(struct stream *s);

/* ---- stream-output.c ---- */

/* VMSHIM_IO_COPY=1 in the environment forces the copy path (tests of the fallback). */
bool stream_copy_forced(void);
/*
 * Output: a real pipe (not a pty) takes the direct path; it is enlarged so a frame can be
 * filled from what the process wrote meanwhile (best effort: the size is a hint).
 */
bool stream_is_pipe(int fd);
void stream_output_setup(struct stream *s);
/*
 * Output: move pipe bytes into frames. Bounded (the normal case), reading pauses while the
 * socket's queue holds AGENT_STREAM_PENDING; unbounded (detaching), it reads until the pipe is
 * empty (at most STREAM_DETACH_MAX). Returns 1 at the pipe's EOF or error, else 0 (empty or
 * paused). Progress and pausing re-arm or stop the process's drain grace.
 */
int stream_pipe_pump(struct stream *s, bool bounded);
/* Output: drop a spliced frame's unsent payload and close the frame pipe (socket gone, free). */
void stream_frame_pipe_close(struct stream *s);
/* Output: the pipe is readable; at its EOF queue ours and see whether we are done. */
void stream_pipe_read_cb(evutil_socket_t fd, short what, void *arg);
/* The socket's output drained: resume the pipe, and see whether we are done. */
void stream_write_cb(struct bufferevent *bev, void *arg);

/* ---- stream-input.c ---- */

/* Consume framed input from the socket. */
void stream_input(struct stream *s);
/*
 * Stdin: read the socket directly in big chunks. A bufferevent reads at most 4 KiB per call
 * (libevent 2.1's EVBUFFER_MAX_READ), which made one pipe write, and one wake-up of the
 * process, per 4 KiB. This tops the input buffer up to AGENT_STREAM_PENDING while the pipe
 * takes it; EOF and errors go to stream_event_cb as the bufferevent would report them.
 */
void stream_input_bulk(struct stream *s);
/*
 * Stdin whose EOF we already received: the shim may close the connection (its half-closed
 * timeout) before we echoed that EOF, because the process has not read everything yet. All
 * the input is here, so this is not a failure: drop the socket, keep writing what is pending
 * into the pipe, and close the pipe once it is through (stream_input_maybe_close).
 */
bool stream_input_complete_close(struct stream *s);
/* Stdin: close the pipe once nothing is pending, then send our EOF. */
void stream_input_maybe_close(struct stream *s);
/* Stdin: the pipe took everything parked: read the socket again. */
void stream_input_unpark(struct stream *s);
/* Stdin: the pipe is writable again. */
void stream_pipe_write_cb(evutil_socket_t fd, short what, void *arg);

#endif
