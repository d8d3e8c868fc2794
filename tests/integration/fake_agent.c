/*
 * fake_agent.c: a hostile guest agent for vmshim's fault-injection tests.
 *
 *   fake_agent --listen PATH --mode MODE [--max-message N]
 *
 * It listens on the Unix socket PATH and plays the VMM's side of the hybrid-vsock handshake
 * (docs/PROTOCOL.md section 1) for the control port (1024) and the stream port (1025), like
 * `vmshim-agent --listen-uds`. It behaves well enough for the shim to connect, subscribe and
 * ping, and to create, start, signal and delete containers (no process runs: every pid is
 * 4242; SignalProcess publishes the /tasks/exit of that process). The MODE makes it misbehave
 * on purpose:
 *
 *   control port, on the "hostile" methods Pids and Stats (every other method behaves):
 *     good          answer them normally
 *     garbage       answer with 4 KiB of pseudo-random bytes (not a frame)
 *     badjson       a well-framed response on the right stream id whose payload is not JSON
 *     oversized     a response header announcing max-message + 1 bytes, then 64 KiB of them
 *     unknown-ids   responses and data frames on stream ids nobody asked for, then the answer
 *     trickle       a response header announcing 100 bytes, then one byte every 100 ms, forever
 *     trickle-once  the first of them (for the whole process) trickles as above, but announcing
 *                   60000 bytes (so the frame does not end, nor turn into garbage, after 10 s
 *                   as trickle's does, within any test's time); after it, Pids
 *                   answers normally and Stats with a 2 MiB payload sent steadily in 64 KiB
 *                   pieces 25 ms apart (about 0.8 s for the frame: large, slow, legitimate)
 *     split         Stats answers a frame of FA_SPLIT_BYTES: the header and 16 bytes at once,
 *                   the rest FA_SPLIT_GAP_MS later in one write (for a shim whose loop is busy,
 *                   i.e. stopped, while the rest arrives); Pids answers normally
 *     request       a request frame (type 1): agents never send those
 *     events        Stats starts a never-ending stream of events on the subscription (Pids
 *                   still answers); the Stats call itself is answered
 *     malformed     well-framed JSON replies whose fields are missing or mistyped: Pids
 *                   answers {"processes":[{"pid":"x"}]}, Stats no payload; CreateContainer of id
 *                   "nopid" answers {}, of "strpid" {"pid":"12"}; StartProcess of "badstart"
 *                   answers {"pid":true}; SignalProcess of "badexit" publishes an exit with
 *                   no exit_status; every other call behaves
 *   stream port:
 *     stream-big      stdout: "hello\n", then a frame of 10 MiB + 1 announced (and 4 KiB of it)
 *     stream-after-eof stdout: "hello\n", EOF, then "more\n" (data after EOF)
 *     stream-noeof    stdin: read the shim's data and EOF, never send our EOF (half-closed)
 *     stream-stdin-data stdin: send a data frame towards the shim (stdin flows the other way)
 *     stream-flood    stdout: "hello\n", then 3 MiB in 64 KiB frames, then EOF, blocking while
 *                     the shim does not read (its exit, from SignalProcess, does not wait)
 *   In every stream mode the other streams behave: stdout/stderr send "hello\n" and EOF, stdin
 *   is read to its EOF and answered with ours.
 *
 * Threads: the main thread accepts; each connection gets a detached thread that does the
 * handshake and then serves it with blocking I/O. Writes to a control connection go through
 * its write lock (the event flood and the replies share the socket). Everything it sees and
 * does is logged on stderr, one line each, for the tests to grep. It never exits by itself:
 * the test kills it.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "msg.h"
#include "transport.h"
#include "util.h"

#define FA_CONTROL_PORT	 1024
#define FA_STREAM_PORT	 1025
#define FA_PID		 4242
#define FA_READ_CHUNK	 65536
#define FA_STEADY_BYTES	 (2u * 1024 * 1024)
#define FA_STEADY_PIECE	 65536
#define FA_STEADY_GAP_MS 25
/* Below a Unix socket's default send buffer, so the rest is in the socket in one write. */
#define FA_SPLIT_BYTES	160000
#define FA_SPLIT_GAP_MS 1000

static struct {
	const char *mode;
	size_t max_message;
	atomic_bool trickled;	 /* trickle-once: the one trickle has begun */
	pthread_mutex_t ev_lock; /* guards ev_ctl, ev_sid */
	struct fa_ctl *ev_ctl;	 /* the connection holding the events subscription */
	uint32_t ev_sid;
} fa = {
    .max_message = 4u << 20,
    .ev_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* One control connection; shared by its reader thread and an event flood thread. */
struct fa_ctl {
	int fd;
	pthread_mutex_t wlock; /* whole frames only */
	atomic_bool dead;
	atomic_int refs;
};

static void
fa_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fake_agent: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(stderr);
}

static bool
fa_mode(const char *m)
{
	return strcmp(fa.mode, m) == 0;
}

static void
fa_ctl_put(struct fa_ctl *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1) {
		close(c->fd);
		pthread_mutex_destroy(&c->wlock);
		free(c);
	}
}

/* Write raw bytes under the connection's write lock; false once the peer is gone. */
static bool
fa_write(struct fa_ctl *c, const void *buf, size_t len)
{
	bool ok;

	pthread_mutex_lock(&c->wlock);
	ok = !atomic_load(&c->dead) && write_all(c->fd, buf, len) == 0;
	if (!ok)
		atomic_store(&c->dead, true);
	pthread_mutex_unlock(&c->wlock);
	return ok;
}

static bool
fa_send_frame(
    struct fa_ctl *c, uint32_t sid, uint8_t type, uint8_t flags, const void *p, size_t len)
{
	size_t n;
	cleanup_free uint8_t *buf = frame_encode(sid, type, flags, p, len, &n);

	return fa_write(c, buf, n);
}

/* A response frame with code/message and payload (borrowed, NULL is {}). */
static bool
fa_respond(struct fa_ctl *c, uint32_t sid, int code, const char *msg, json_t *payload)
{
	size_t len;
	cleanup_free char *body = msg_response_encode(code, msg, payload, &len);

	return fa_send_frame(c, sid, FRAME_TYPE_RESPONSE, 0, body, len);
}

/* Publish one event on the subscription (steals `event`). */
static bool
fa_publish(const char *topic, json_t *event)
{
	char ts[TIME_RFC3339_LEN];
	struct fa_ctl *c;
	uint32_t sid;
	size_t len;
	bool ok = false;
	cleanup_free char *body = NULL;

	time_rfc3339_now(ts);
	body = msg_event_encode(topic, ts, event, &len);
	json_decref(event);
	pthread_mutex_lock(&fa.ev_lock);
	c = fa.ev_ctl;
	sid = fa.ev_sid;
	if (c != NULL)
		atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&fa.ev_lock);
	if (c != NULL) {
		ok = fa_send_frame(c, sid, FRAME_TYPE_DATA, 0, body, len);
		fa_ctl_put(c);
	}
	return ok;
}

/* Event flood thread: events for unknown containers and processes, until the peer goes. */
static void *
fa_flood_main(void *arg)
{
	struct fa_ctl *c = arg;
	char ts[TIME_RFC3339_LEN];
	unsigned long n = 0;

	for (; !atomic_load(&c->dead); n++) {
		char id[32];
		size_t len;
		cleanup_free char *body = NULL;
		json_t *ev;

		snprintf(id, sizeof id, "ghost%lu", n % 1000);
		time_rfc3339_now(ts);
		ev = json_pack("{s:s, s:s, s:i, s:i, s:s}", "container_id", id, "id", id, "pid",
		    FA_PID, "exit_status", 1, "exited_at", ts);
		body = msg_event_encode(n % 2 ? "/tasks/exit" : "/tasks/bogus", ts, ev, &len);
		json_decref(ev);
		if (!fa_send_frame(c, fa.ev_sid, FRAME_TYPE_DATA, 0, body, len))
			break;
	}
	fa_log("event flood ended after %lu events", n);
	fa_ctl_put(c);
	return NULL;
}

/* A well-formed answer to Pids or Stats (NULL for other methods). */
static json_t *
fa_good_payload(const char *method)
{
	if (strcmp(method, "Pids") == 0)
		return json_pack("{s:[{s:i}]}", "processes", "pid", FA_PID);
	if (strcmp(method, "Stats") == 0)
		return json_pack("{s:{s:i}, s:{s:i, s:i}, s:{s:i}}", "cpu", "usage_usec", 1,
		    "memory", "usage_bytes", 4096, "limit_bytes", 8192, "pids", "current", 1);
	return NULL;
}

/*
 * An OK response frame on sid whose payload is a well-formed Stats answer plus
 * "blob":"<size bytes of fill>" (malloc'd).
 */
static uint8_t *
fa_blob_frame(uint32_t sid, size_t size, char fill, size_t *flen)
{
	cleanup_free char *blob = xmalloc(size + 1);
	cleanup_free char *body = NULL;
	cleanup_json json_t *pl = NULL;
	size_t len;

	memset(blob, fill, size);
	blob[size] = '\0';
	pl = fa_good_payload("Stats");
	json_object_set_new(pl, "blob", json_string(blob));
	body = msg_response_encode(0, "", pl, &len);
	return frame_encode(sid, FRAME_TYPE_RESPONSE, 0, body, len, flen);
}

/* A response of FA_STEADY_BYTES of payload, written in pieces with a pause between them. */
static void
fa_steady(struct fa_ctl *c, uint32_t sid)
{
	cleanup_free uint8_t *frame = NULL;
	size_t flen, off, n;
	int64_t t0 = time_mono_ms();
	bool ok = true;

	frame = fa_blob_frame(sid, FA_STEADY_BYTES, 'a', &flen);
	pthread_mutex_lock(&c->wlock); /* whole frames only, however slowly */
	for (off = 0; ok && off < flen; off += n) {
		n = flen - off < FA_STEADY_PIECE ? flen - off : FA_STEADY_PIECE;
		if (off > 0)
			usleep(FA_STEADY_GAP_MS * 1000);
		ok = !atomic_load(&c->dead) && write_all(c->fd, frame + off, n) == 0;
	}
	if (!ok)
		atomic_store(&c->dead, true);
	pthread_mutex_unlock(&c->wlock);
	fa_log("steady: %s a frame of %zu bytes in %lld ms", ok ? "sent" : "failed to send", flen,
	    (long long)(time_mono_ms() - t0));
}

/* A response of FA_SPLIT_BYTES: 16 bytes of it after the header, the rest after a pause. */
static void
fa_split(struct fa_ctl *c, uint32_t sid)
{
	cleanup_free uint8_t *frame = NULL;
	size_t flen, first = FRAME_HEADER_SIZE + 16;
	bool ok;

	frame = fa_blob_frame(sid, FA_SPLIT_BYTES, 'b', &flen);
	pthread_mutex_lock(&c->wlock); /* whole frames only */
	ok = write_all(c->fd, frame, first) == 0;
	fa_log("split: first part sent (%zu of %zu bytes)", first, flen);
	usleep(FA_SPLIT_GAP_MS * 1000);
	ok = ok && write_all(c->fd, frame + first, flen - first) == 0;
	if (!ok)
		atomic_store(&c->dead, true);
	pthread_mutex_unlock(&c->wlock);
	fa_log("split: %s", ok ? "rest sent" : "failed to send the rest");
}

/* Misbehave on a hostile method call according to the mode. */
static void
fa_hostile(struct fa_ctl *c, uint32_t sid, const char *method)
{
	uint8_t hdr[FRAME_HEADER_SIZE];
	struct frame_header h = {.stream_id = sid, .type = FRAME_TYPE_RESPONSE};
	static uint8_t junk[65536];
	uint32_t x = 2463534242u;

	fa_log("hostile %s: %s on stream %u", fa.mode, method, sid);
	for (size_t i = 0; i < sizeof junk; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		junk[i] = (uint8_t)x;
	}
	if (fa_mode("garbage")) {
		fa_write(c, junk, 4096);
	} else if (fa_mode("badjson")) {
		fa_send_frame(c, sid, FRAME_TYPE_RESPONSE, 0, "{\"status\":{\"code\":0,", 20);
	} else if (fa_mode("oversized")) {
		h.length = (uint32_t)fa.max_message + 1;
		frame_header_pack(&h, hdr);
		if (fa_write(c, hdr, sizeof hdr))
			fa_write(c, junk, sizeof junk);
	} else if (fa_mode("unknown-ids")) {
		json_t *pl = json_pack("{s:s}", "stray", "yes");

		for (uint32_t k = 0; k < 100; k++) {
			fa_respond(c, sid + 2 * (k + 1000), 0, "", pl);
			fa_respond(c, 2 * k + 2, 0, "", pl); /* even: never a client id */
			fa_send_frame(c, sid + 2 * (k + 2000), FRAME_TYPE_DATA, 0, "{}", 2);
		}
		json_decref(pl);
		pl = fa_good_payload(method);
		fa_respond(c, sid, 0, "", pl);
		json_decref(pl);
	} else if (fa_mode("trickle-once") && atomic_exchange(&fa.trickled, true)) {
		if (strcmp(method, "Stats") == 0) {
			fa_steady(c, sid);
		} else {
			cleanup_json json_t *pl =
			    json_pack("{s:[{s:i}]}", "processes", "pid", FA_PID);

			fa_respond(c, sid, 0, "", pl);
		}
	} else if (fa_mode("split") && strcmp(method, "Stats") == 0) {
		fa_split(c, sid);
	} else if (fa_mode("split")) {
		cleanup_json json_t *pl = json_pack("{s:[{s:i}]}", "processes", "pid", FA_PID);

		fa_respond(c, sid, 0, "", pl);
	} else if (fa_mode("trickle") || fa_mode("trickle-once")) {
		h.length = fa_mode("trickle") ? 100 : 60000;
		frame_header_pack(&h, hdr);
		fa_write(c, hdr, sizeof hdr);
		for (int i = 0; i < 100000 && fa_write(c, "x", 1); i++)
			usleep(100 * 1000);
		fa_log("trickle ended");
	} else if (fa_mode("request")) {
		size_t len;
		cleanup_free char *req =
		    msg_request_encode("vmshim.host.v1", "Evil", NULL, 0, &len);

		fa_send_frame(c, sid, FRAME_TYPE_REQUEST, 0, req, len);
	} else {
		cleanup_json json_t *pl = fa_good_payload(method);

		fa_respond(c, sid, 0, "", pl);
	}
}

/* Mode malformed: answer the calls it spoils (true), or leave the call to fa_ctl_request. */
static bool
fa_malformed(struct fa_ctl *c, uint32_t sid, const char *m, const char *id)
{
	cleanup_json json_t *pl = NULL;
	char ts[TIME_RFC3339_LEN];

	if (strcmp(m, "Pids") == 0)
		pl = json_pack("{s:[{s:s}]}", "processes", "pid", "x");
	else if (strcmp(m, "Stats") == 0)
		pl = NULL; /* no payload at all */
	else if (strcmp(m, "CreateContainer") == 0 && strcmp(id, "nopid") == 0)
		pl = json_object();
	else if (strcmp(m, "CreateContainer") == 0 && strcmp(id, "strpid") == 0)
		pl = json_pack("{s:s}", "pid", "12");
	else if (strcmp(m, "StartProcess") == 0 && strcmp(id, "badstart") == 0)
		pl = json_pack("{s:b}", "pid", 1);
	else if (strcmp(m, "SignalProcess") == 0 && strcmp(id, "badexit") == 0) {
		fa_respond(c, sid, 0, "", NULL);
		time_rfc3339_now(ts);
		fa_publish("/tasks/exit", json_pack("{s:s, s:s, s:i, s:s}", "container_id", id,
					      "id", id, "pid", FA_PID, "exited_at", ts));
		return true;
	} else
		return false;
	fa_log("malformed reply to %s id=%s", m, id);
	fa_respond(c, sid, 0, "", pl);
	return true;
}

/* One request on the control port. */
static void
fa_ctl_request(struct fa_ctl *c, uint32_t sid, struct msg_request *req)
{
	const char *m = req->method;
	const char *id = json_string_value(json_object_get(req->payload, "id")) ?: "";
	const char *exec_id = json_string_value(json_object_get(req->payload, "exec_id")) ?: "";
	char ts[TIME_RFC3339_LEN];
	pthread_t t;

	fa_log("request %s id=%s exec_id=%s stream %u", m, id, exec_id, sid);
	if (fa_mode("malformed") && fa_malformed(c, sid, m, id))
		return;
	if (strcmp(m, "SubscribeEvents") == 0) {
		pthread_mutex_lock(&fa.ev_lock);
		if (fa.ev_ctl != NULL)
			fa_ctl_put(fa.ev_ctl);
		atomic_fetch_add(&c->refs, 1);
		fa.ev_ctl = c;
		fa.ev_sid = sid;
		pthread_mutex_unlock(&fa.ev_lock);
		fa_respond(c, sid, 0, "", NULL);
	} else if (strcmp(m, "Ping") == 0) {
		cleanup_json json_t *pl = json_pack(
		    "{s:s, s:i, s:s}", "version", "fake", "pid", (int)getpid(), "runner", fa.mode);

		fa_respond(c, sid, 0, "", pl);
	} else if (strcmp(m, "Stats") == 0 && fa_mode("events")) {
		cleanup_json json_t *pl = fa_good_payload(m);

		fa_respond(c, sid, 0, "", pl);
		atomic_fetch_add(&c->refs, 1);
		if (pthread_create(&t, NULL, fa_flood_main, c) != 0)
			fatalx("pthread_create");
		pthread_detach(t);
	} else if ((strcmp(m, "Pids") == 0 || strcmp(m, "Stats") == 0) && !fa_mode("events")) {
		fa_hostile(c, sid, m);
	} else if (strcmp(m, "Pids") == 0) {
		cleanup_json json_t *pl = json_pack("{s:[{s:i}]}", "processes", "pid", FA_PID);

		fa_respond(c, sid, 0, "", pl);
	} else if (strcmp(m, "CreateContainer") == 0 || strcmp(m, "StartProcess") == 0) {
		cleanup_json json_t *pl = json_pack("{s:i}", "pid", FA_PID);

		fa_respond(c, sid, 0, "", pl);
	} else if (strcmp(m, "SignalProcess") == 0) {
		int sig = (int)json_integer_value(json_object_get(req->payload, "signal"));

		fa_respond(c, sid, 0, "", NULL);
		time_rfc3339_now(ts);
		fa_publish("/tasks/exit", json_pack("{s:s, s:s, s:i, s:i, s:s}", "container_id", id,
					      "id", *exec_id != '\0' ? exec_id : id, "pid", FA_PID,
					      "exit_status", 128 + sig, "exited_at", ts));
	} else if (strcmp(m, "DeleteProcess") == 0) {
		cleanup_json json_t *pl = NULL;

		time_rfc3339_now(ts);
		pl = json_pack(
		    "{s:i, s:i, s:s}", "pid", FA_PID, "exit_status", 137, "exited_at", ts);
		fa_respond(c, sid, 0, "", pl);
	} else {
		fa_respond(c, sid, 0, "", NULL);
	}
}

/* Serve one control connection until the shim closes it. */
static void
fa_control(int fd)
{
	struct fa_ctl *c = xcalloc(1, sizeof *c);
	struct frame_decoder dec;
	struct frame_header h;
	struct msg_request req;
	struct status st;
	uint8_t *buf = xmalloc(FA_READ_CHUNK), *payload;
	enum frame_result r;
	size_t used, off;
	ssize_t n;

	c->fd = fd;
	pthread_mutex_init(&c->wlock, NULL);
	atomic_init(&c->refs, 1);
	frame_decoder_init(&dec, 4u << 20);
	fa_log("control connection");
	while ((n = read(fd, buf, FA_READ_CHUNK)) > 0) {
		for (off = 0; off < (size_t)n; off += used) {
			r = frame_decoder_feed(
			    &dec, buf + off, (size_t)n - off, &used, &h, &payload);
			if (r == FRAME_MORE)
				break;
			if (r == FRAME_TOO_BIG)
				continue;
			if (h.type == FRAME_TYPE_REQUEST &&
			    msg_request_decode(payload, h.length, &req, &st) == 0) {
				fa_ctl_request(c, h.stream_id, &req);
				msg_request_clear(&req);
			}
			free(payload);
		}
	}
	fa_log("control connection closed by the shim (%s)", n < 0 ? strerror(errno) : "EOF");
	atomic_store(&c->dead, true);
	pthread_mutex_lock(&fa.ev_lock);
	if (fa.ev_ctl == c) {
		fa.ev_ctl = NULL;
		fa_ctl_put(c);
	}
	pthread_mutex_unlock(&fa.ev_lock);
	frame_decoder_free(&dec);
	free(buf);
	fa_ctl_put(c);
}

/* Stream frames: u32 length then the bytes. */
static bool
fa_stream_send(int fd, const void *p, uint32_t len)
{
	uint8_t l[STREAM_LEN_SIZE];

	stream_len_pack(len, l);
	return write_all(fd, l, sizeof l) == 0 && (len == 0 || write_all(fd, p, len) == 0);
}

/* Read what the shim sends until it closes; returns payload bytes seen, *eof if it sent EOF. */
static size_t
fa_stream_drain(int fd, bool *eof)
{
	struct stream_decoder d;
	const uint8_t *data;
	size_t used, len, total = 0, off;
	enum stream_result r;
	uint8_t buf[4096];
	ssize_t n;

	stream_decoder_init(&d, 0);
	*eof = false;
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (off = 0; off < (size_t)n; off += used) {
			r = stream_decoder_feed(&d, buf + off, (size_t)n - off, &used, &data, &len);
			if (r == STREAM_DATA)
				total += len;
			else if (r == STREAM_EOF)
				*eof = true;
			else if (r == STREAM_ERROR)
				return total;
			if (r == STREAM_MORE)
				break;
		}
	}
	return total;
}

/* Serve one stream connection: hello, then the mode's behaviour. */
static void
fa_stream(int fd)
{
	char hello[STREAM_HELLO_MAX + 1];
	json_error_t jerr;
	cleanup_json json_t *j = NULL;
	const char *which;
	long n;
	bool eof;
	size_t got;
	int64_t t0;

	n = stream_read_frame(fd, hello, STREAM_HELLO_MAX, time_mono_ms() + 10000);
	if (n < 0) {
		fa_log("stream: no hello: %s", strerror((int)-n));
		close(fd);
		return;
	}
	hello[n] = '\0';
	j = json_loads(hello, 0, &jerr);
	which = json_string_value(json_object_get(j, "stream")) ?: "?";
	fa_log("stream %s attached: %s", which, hello);
	if (strcmp(which, "stdin") == 0) {
		if (fa_mode("stream-stdin-data")) {
			fa_stream_send(fd, "backwards\n", 10);
			fa_log("stdin: sent data towards the shim");
		}
		t0 = time_mono_ms();
		if (fa_mode("stream-noeof")) {
			/* Read up to the shim's EOF, then keep quiet: half-closed forever. */
			struct stream_decoder d;
			const uint8_t *data;
			size_t used, len, off, total = 0;
			uint8_t buf[4096];
			ssize_t r;
			bool seen = false;

			stream_decoder_init(&d, 0);
			while (!seen && (r = read(fd, buf, sizeof buf)) > 0)
				for (off = 0; off < (size_t)r && !seen; off += used) {
					enum stream_result sr = stream_decoder_feed(
					    &d, buf + off, (size_t)r - off, &used, &data, &len);

					if (sr == STREAM_DATA)
						total += len;
					seen = sr == STREAM_EOF;
					if (sr == STREAM_MORE || sr == STREAM_ERROR)
						break;
				}
			fa_log("stdin: %zu bytes, EOF %s; not sending ours", total,
			    seen ? "received" : "missing");
			t0 = time_mono_ms();
			got = fa_stream_drain(fd, &eof);
			fa_log("stdin: closed by the shim %lld ms after its EOF",
			    (long long)(time_mono_ms() - t0));
		} else {
			got = fa_stream_drain(fd, &eof);
			fa_log("stdin: %zu bytes, EOF %s, closed after %lld ms", got,
			    eof ? "received" : "missing", (long long)(time_mono_ms() - t0));
		}
		close(fd);
		return;
	}
	fa_stream_send(fd, "hello\n", 6);
	if (strcmp(which, "stdout") == 0 && fa_mode("stream-big")) {
		static uint8_t junk[4096];
		uint8_t l[STREAM_LEN_SIZE];

		/* An announced length of 10 MiB + 1: the shim must fail the stream unread. */
		stream_len_pack(STREAM_FRAME_MAX + 1, l);
		if (write_all(fd, l, sizeof l) == 0)
			(void)write_all(fd, junk, sizeof junk);
		fa_log("stdout: sent a frame header of %u bytes", STREAM_FRAME_MAX + 1);
	} else if (strcmp(which, "stdout") == 0 && fa_mode("stream-flood")) {
		static uint8_t zeros[FA_READ_CHUNK];
		size_t sent = 0;

		while (sent < 48 * sizeof zeros && fa_stream_send(fd, zeros, sizeof zeros))
			sent += sizeof zeros;
		if (sent == 48 * sizeof zeros && fa_stream_send(fd, NULL, 0))
			fa_log("stdout: flooded %zu bytes and EOF", sent);
		else
			fa_log("stdout: flood cut after %zu bytes: %s", sent, strerror(errno));
	} else if (strcmp(which, "stdout") == 0 && fa_mode("stream-after-eof")) {
		fa_stream_send(fd, NULL, 0);
		fa_stream_send(fd, "more\n", 5);
		fa_log("stdout: sent data after EOF");
	} else {
		fa_stream_send(fd, NULL, 0);
	}
	got = fa_stream_drain(fd, &eof);
	fa_log("%s: closed by the shim (its EOF %s)", which, eof ? "received" : "missing");
	close(fd);
}

static void *
fa_conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct status st;
	uint32_t port;
	char ok[32];

	if (hybrid_accept_line(fd, time_mono_ms() + 2000, &port, &st) < 0) {
		fa_log("handshake: %s", st.msg);
		close(fd);
		return NULL;
	}
	snprintf(ok, sizeof ok, "OK %u\n", 1073741824u);
	if (write_all(fd, ok, strlen(ok)) < 0) {
		close(fd);
		return NULL;
	}
	if (port == FA_CONTROL_PORT)
		fa_control(fd);
	else if (port == FA_STREAM_PORT)
		fa_stream(fd);
	else
		close(fd);
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	struct status st;
	pthread_t t;
	int lfd, fd;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--listen") == 0)
			path = argv[i + 1];
		else if (strcmp(argv[i], "--mode") == 0)
			fa.mode = argv[i + 1];
		else if (strcmp(argv[i], "--max-message") == 0)
			fa.max_message = (size_t)atol(argv[i + 1]);
	}
	if (path == NULL || fa.mode == NULL) {
		fprintf(stderr, "usage: fake_agent --listen PATH --mode MODE [--max-message N]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = transport_listen_unix(path, 0600, 64, &st);
	if (lfd < 0) {
		fprintf(stderr, "fake_agent: %s\n", st.msg);
		return 1;
	}
	fd_set_nonblock(lfd, false);
	fa_log("listening on %s, mode %s", path, fa.mode);
	for (;;) {
		fd = transport_accept(lfd, false);
		if (fd < 0) {
			if (fd == -EINTR || fd == -ECONNABORTED)
				continue;
			fatalx("accept: %s", strerror(-fd));
		}
		if (pthread_create(&t, NULL, fa_conn_main, (void *)(intptr_t)fd) != 0)
			fatalx("pthread_create");
		pthread_detach(t);
	}
}
