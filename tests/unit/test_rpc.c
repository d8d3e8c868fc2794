/*
 * test_rpc.c: the RPC layer end to end: rpc_conn servers on a libevent loop thread, rpc_client
 * callers on plain threads, and raw frames written by hand where a well-behaved client cannot
 * produce the input.
 *
 * One loop thread runs for the whole program. Each test makes socketpairs: the server end goes
 * to the loop (rpc_conn_new runs there, through event_base_once), the client end to an
 * rpc_client with its reader thread or to the test itself for raw frames. Per-connection state
 * (struct tconn) is owned by the test and freed after its on_close has run. The test handler
 * answers Echo at once, parks Park until a Release with the same key arrives, and serves Big,
 * Sub and Hangup for the flow-control, subscription and peer-close cases.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "msg.h"
#include "rpc.h"
#include "testlib.h"
#include "unit.h"
#include "util.h"

#define SVC	    "test.v1.T"
#define MAX_MESSAGE (64u * 1024)

static struct event_base *loop_base;
static pthread_t loop_thread;

/* Guards the tconn fields marked (lock) and the parked count; cond signals their changes. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned parked_count;

struct tconn {
	struct rpc_conn *rc; /* loop thread; valid until on_close */
	bool closed;	     /* (lock) on_close ran */
	unsigned big;	     /* (lock) Big requests handled */
	size_t pending;	     /* (lock) output pending, sampled by probe */
	unsigned inflight;   /* (lock) sampled by probe */
};

/* A parked request: loop thread only. */
struct parked {
	struct parked *next;
	struct rpc_conn *rc; /* a reference */
	uint32_t stream_id;
	char *key;
	json_t *payload;
};
static struct parked *parked_list;

/* ---- the loop thread ---- */

static void *
loop_main(void *arg)
{
	(void)arg;
	event_base_loop(loop_base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

struct on_loop {
	void (*fn)(void *);
	void *arg;
	bool done;
};

static void
on_loop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct on_loop *ol = arg;

	(void)fd;
	(void)what;
	ol->fn(ol->arg);
	pthread_mutex_lock(&lock);
	ol->done = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* Run fn(arg) on the loop thread and wait for it. */
static void
run_on_loop(void (*fn)(void *), void *arg)
{
	struct on_loop ol = {fn, arg, false};
	struct timeval tv = {0, 0};

	if (event_base_once(loop_base, -1, EV_TIMEOUT, on_loop_cb, &ol, &tv) != 0)
		fatalx("event_base_once");
	pthread_mutex_lock(&lock);
	while (!ol.done)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}

/* ---- the test service ---- */

static void
park_release(struct rpc_conn *rc, const char *key, bool all_of_conn)
{
	struct parked **pp = &parked_list, *p;

	while ((p = *pp) != NULL) {
		if (all_of_conn ? p->rc != rc : strcmp(p->key, key) != 0) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		rpc_conn_respond(p->rc, p->stream_id, ST_OK, NULL, p->payload);
		rpc_conn_unref(p->rc);
		json_decref(p->payload);
		free(p->key);
		free(p);
		pthread_mutex_lock(&lock);
		parked_count--;
		pthread_mutex_unlock(&lock);
	}
}

static void
t_on_request(struct rpc_conn *rc, uint32_t id, uint8_t flags, struct msg_request *req, void *arg)
{
	struct tconn *tc = arg;
	const char *key = "";
	struct parked *p;
	struct status st;
	uint32_t n = 0, i;
	char buf[32];

	(void)flags;
	if (strcmp(req->method, "Echo") == 0) {
		rpc_conn_respond(rc, id, ST_OK, NULL, req->payload);
	} else if (strcmp(req->method, "Park") == 0) {
		msg_get_string(req->payload, "payload", "key", false, &key, &st);
		p = xcalloc(1, sizeof *p);
		p->rc = rpc_conn_ref(rc);
		p->stream_id = id;
		p->key = xstrdup(key);
		p->payload = json_incref(req->payload);
		p->next = parked_list;
		parked_list = p;
		pthread_mutex_lock(&lock);
		parked_count++;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	} else if (strcmp(req->method, "Release") == 0) {
		msg_get_string(req->payload, "payload", "key", false, &key, &st);
		park_release(rc, key, false);
		rpc_conn_respond(rc, id, ST_OK, NULL, NULL);
	} else if (strcmp(req->method, "Big") == 0) {
		char *s = xmalloc(256 * 1024 + 1);
		json_t *j;

		memset(s, 'x', 256 * 1024);
		s[256 * 1024] = '\0';
		j = json_pack("{s:s}", "data", s);
		rpc_conn_respond(rc, id, ST_OK, NULL, j);
		json_decref(j);
		free(s);
		pthread_mutex_lock(&lock);
		tc->big++;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	} else if (strcmp(req->method, "Sub") == 0) {
		msg_get_u32(req->payload, "payload", "n", false, &n, &st);
		rpc_conn_respond(rc, id, ST_OK, NULL, NULL);
		for (i = 0; i < n; i++) {
			snprintf(buf, sizeof buf, "event-%u", i);
			CU_ASSERT_EQUAL(
			    rpc_conn_send_data(rc, id, 0, buf, strlen(buf), 1 << 20), 0);
		}
	} else if (strcmp(req->method, "Hangup") == 0) {
		rpc_conn_close(rc);
		CU_ASSERT_TRUE(rpc_conn_is_closed(rc));
		park_release(rc, NULL, true); /* responses to a closed conn: silent no-ops */
	} else {
		rpc_conn_respond(rc, id, ST_NOT_FOUND, "no such method", NULL);
	}
	msg_request_clear(req);
}

static void
t_on_close(struct rpc_conn *rc, void *arg)
{
	struct tconn *tc = arg;

	CU_ASSERT_PTR_EQUAL(tc->rc, rc);
	pthread_mutex_lock(&lock);
	CU_ASSERT_FALSE(tc->closed);
	tc->closed = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static const struct rpc_server_ops t_ops = {t_on_request, t_on_close};

struct add_arg {
	struct tconn *tc;
	int fd;
};

static void
add_on_loop(void *arg)
{
	struct add_arg *a = arg;

	a->tc->rc = rpc_conn_new(loop_base, a->fd, MAX_MESSAGE, &t_ops, a->tc);
}

/* A socketpair whose server end is served on the loop; returns the client end (blocking). */
static int
serve_pair(struct tconn *tc)
{
	struct add_arg a;
	int sv[2];

	memset(tc, 0, sizeof *tc);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		fatal("socketpair");
	if (fd_set_nonblock(sv[1], true) != 0)
		fatal("nonblock");
	a.tc = tc;
	a.fd = sv[1];
	run_on_loop(add_on_loop, &a);
	return sv[0];
}

static void
wait_closed(struct tconn *tc)
{
	pthread_mutex_lock(&lock);
	while (!tc->closed)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}

static void
wait_parked(unsigned n)
{
	pthread_mutex_lock(&lock);
	while (parked_count < n)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}

static struct rpc_client *
client_for(struct tconn *tc)
{
	struct rpc_client *c = rpc_client_new(serve_pair(tc), MAX_MESSAGE);
	struct status st;

	CU_ASSERT_EQUAL_FATAL(rpc_client_start_reader(c, &st), 0);
	return c;
}

/* Close the client and wait until the server side has closed too. */
static void
client_done(struct rpc_client *c, struct tconn *tc)
{
	rpc_client_free(c);
	wait_closed(tc);
}

static int
echo_i(struct rpc_client *c, json_int_t v, struct status *st)
{
	cleanup_json json_t *req = json_pack("{s:I}", "v", v);
	cleanup_json json_t *resp = NULL;

	if (rpc_client_call(c, SVC, "Echo", req, 5000, &resp, st) != 0)
		return -1;
	if (!json_equal(req, resp))
		return status_set(st, ST_INTERNAL, "echo mismatch");
	return 0;
}

/* ---- raw frames ---- */

static void
raw_send(int fd, uint32_t id, uint8_t type, uint8_t flags, const char *json)
{
	size_t len;
	cleanup_free uint8_t *f = frame_encode(id, type, flags, json, strlen(json), &len);

	CU_ASSERT_EQUAL(write_all(fd, f, len), 0);
}

static void
raw_request(int fd, uint32_t id, const char *method, const char *payload)
{
	char buf[512];

	snprintf(buf, sizeof buf, "{\"service\":\"%s\",\"method\":\"%s\",\"payload\":%s}", SVC,
	    method, payload);
	raw_send(fd, id, FRAME_TYPE_REQUEST, 0, buf);
}

/* Read one frame (5 s deadline); returns its decoded response and header. */
static int
raw_recv(int fd, struct frame_header *h, struct msg_response *resp)
{
	uint8_t hdr[FRAME_HEADER_SIZE];
	cleanup_free uint8_t *p = NULL;
	struct status st;

	if (fd_wait(fd, POLLIN, time_mono_ms() + 5000) != 1)
		return -1;
	if (read_full(fd, hdr, sizeof hdr) != 0)
		return -1;
	frame_header_unpack(hdr, h);
	p = xmalloc(h->length + 1);
	if (read_full(fd, p, h->length) != 0)
		return -1;
	return msg_response_decode(p, h->length, resp, &st);
}

/* ---- tests ---- */

struct conc_arg {
	struct rpc_client *c;
	int thread;
	unsigned ok;
};

static void *
conc_thread(void *arg)
{
	struct conc_arg *a = arg;
	struct status st;
	int i;

	for (i = 0; i < 200; i++)
		if (echo_i(a->c, a->thread * 1000 + i, &st) == 0)
			a->ok++;
	return NULL;
}

/* 8 threads x 200 calls on one client: every answer matches its own request. */
static void
test_concurrent_calls(void)
{
	struct tconn tc;
	struct rpc_client *c = client_for(&tc);
	struct conc_arg a[8];
	pthread_t th[8];
	int i;

	for (i = 0; i < 8; i++) {
		a[i] = (struct conc_arg){c, i, 0};
		pthread_create(&th[i], NULL, conc_thread, &a[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(a[i].ok, 200);
	}
	client_done(c, &tc);
}

struct park_arg {
	struct rpc_client *c;
	const char *key;
	int timeout_ms;
	int rc;
	struct status st;
	json_t *resp;
	bool done; /* (lock) */
};

static void *
park_thread(void *arg)
{
	struct park_arg *a = arg;
	json_t *req = json_pack("{s:s}", "key", a->key);

	a->rc = rpc_client_call(a->c, SVC, "Park", req, a->timeout_ms, &a->resp, &a->st);
	json_decref(req);
	pthread_mutex_lock(&lock);
	a->done = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void
release(struct rpc_client *c, const char *key)
{
	cleanup_json json_t *req = json_pack("{s:s}", "key", key);
	struct status st;

	CU_ASSERT_EQUAL(rpc_client_call(c, SVC, "Release", req, 5000, NULL, &st), 0);
}

/* A parked slow call does not delay fast ones; answers out of order find their callers. */
static void
test_out_of_order(void)
{
	struct tconn tc;
	struct rpc_client *c = client_for(&tc);
	struct park_arg p1 = {c, "one", 0, 0, {0}, NULL, false};
	struct park_arg p2 = {c, "two", 0, 0, {0}, NULL, false};
	pthread_t t1, t2;
	struct status st;
	unsigned base = parked_count;

	pthread_create(&t1, NULL, park_thread, &p1);
	pthread_create(&t2, NULL, park_thread, &p2);
	wait_parked(base + 2);
	CU_ASSERT_EQUAL(echo_i(c, 42, &st), 0);
	pthread_mutex_lock(&lock);
	CU_ASSERT_FALSE(p1.done || p2.done);
	pthread_mutex_unlock(&lock);
	release(c, "two"); /* the later call first */
	pthread_join(t2, NULL);
	pthread_mutex_lock(&lock);
	CU_ASSERT_FALSE(p1.done);
	pthread_mutex_unlock(&lock);
	CU_ASSERT_EQUAL(p2.rc, 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p2.resp, "key")), "two");
	release(c, "one");
	pthread_join(t1, NULL);
	CU_ASSERT_EQUAL(p1.rc, 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p1.resp, "key")), "one");
	json_decref(p1.resp);
	json_decref(p2.resp);
	client_done(c, &tc);
}

/* A timed-out call reports DEADLINE_EXCEEDED; its late answer is dropped; the client goes on. */
static void
test_timeout(void)
{
	struct tconn tc;
	struct rpc_client *c = client_for(&tc);
	struct park_arg p = {c, "late", 100, 0, {0}, NULL, false};
	struct status st;
	int64_t t0 = time_mono_ms();

	park_thread(&p);
	CU_ASSERT_EQUAL(p.rc, -1);
	CU_ASSERT_EQUAL(p.st.code, ST_DEADLINE_EXCEEDED);
	CU_ASSERT_TRUE(time_mono_ms() - t0 >= 100);
	CU_ASSERT_PTR_NULL(p.resp);
	release(c, "late"); /* the late response precedes Release's on the wire */
	CU_ASSERT_EQUAL(echo_i(c, 7, &st), 0);
	CU_ASSERT_FALSE(rpc_client_failed(c));
	client_done(c, &tc);
}

/* An error status from the server comes back with its code and message. */
static void
test_error_status(void)
{
	struct tconn tc;
	struct rpc_client *c = client_for(&tc);
	struct status st;
	json_t *resp = (json_t *)&st;

	CU_ASSERT_EQUAL(rpc_client_call(c, SVC, "Nope", NULL, 5000, &resp, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(st.msg, "no such method");
	CU_ASSERT_PTR_NULL(resp);
	CU_ASSERT_EQUAL(echo_i(c, 1, &st), 0);
	client_done(c, &tc);
}

/* Hand-written bad frames: each gets its error and the connection keeps serving. */
static void
test_server_protocol_errors(void)
{
	struct tconn tc;
	int fd = serve_pair(&tc);
	struct frame_header h;
	struct msg_response r;
	unsigned base = parked_count;
	uint8_t hdr[FRAME_HEADER_SIZE], chunk[4096];
	struct frame_header big = {1u << 20, 11, FRAME_TYPE_REQUEST, 0};
	int i;

	/* Even stream id. */
	raw_request(fd, 2, "Echo", "{}");
	CU_ASSERT_EQUAL_FATAL(raw_recv(fd, &h, &r), 0);
	CU_ASSERT_EQUAL(h.stream_id, 2);
	CU_ASSERT_EQUAL(h.type, FRAME_TYPE_RESPONSE);
	CU_ASSERT_EQUAL(r.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_STRING_EQUAL(r.message, "stream id 2: client streams must be odd");
	msg_response_clear(&r);

	/*
	 * A stream id already in flight: the duplicate is answered INVALID_ARGUMENT at once and
	 * not run (a client awaiting it must not hang); the Park is still served on id 5.
	 */
	raw_request(fd, 5, "Park", "{\"key\":\"raw\",\"n\":1}");
	wait_parked(base + 1);
	raw_request(fd, 5, "Echo", "{\"dup\":true}");
	CU_ASSERT_EQUAL_FATAL(raw_recv(fd, &h, &r), 0);
	CU_ASSERT_EQUAL(h.stream_id, 5);
	CU_ASSERT_EQUAL(r.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_STRING_EQUAL(r.message, "stream id 5: a request on it is still in flight");
	CU_ASSERT_PTR_NULL(r.payload != NULL ? json_object_get(r.payload, "dup") : NULL);
	msg_response_clear(&r);
	raw_request(fd, 7, "Release", "{\"key\":\"raw\"}");
	CU_ASSERT_EQUAL_FATAL(raw_recv(fd, &h, &r), 0);
	CU_ASSERT_EQUAL(h.stream_id, 5);
	CU_ASSERT_EQUAL(r.code, ST_OK);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r.payload, "n")), 1);
	CU_ASSERT_PTR_NULL(json_object_get(r.payload, "dup"));
	msg_response_clear(&r);
	CU_ASSERT_EQUAL_FATAL(raw_recv(fd, &h, &r), 0);
	CU_ASSERT_EQUAL(h.stream_id, 7);
	CU_ASSERT_EQUAL(r.code, ST_OK);
	msg_response_clear(&r);

	/* Malformed JSON. */
	raw_send(fd, 9, FRAME_TYPE_REQUEST, 0, "{\"service\":");
	CU_ASSERT_EQUAL_FATAL(raw_recv(fd, &h, &r), 0);
	CU_ASSERT_EQUAL(h.stream_id, 9);
	CU_ASSERT_EQUAL(r.code, ST_INVALID_ARGUMENT);
	msg_response_clear(&r);

	/* A data frame from the client: ignored, no reply (the next reply is Echo's). */
	raw_send(fd, 13, FRAME_TYPE_DATA, 0, "junk");

	/*
	 * Oversized payload sent in pieces: RESOURCE_EXHAUSTED as soon as its first byte shows
	 * the codec ('{': JSON), before the rest is sent, then the next call works.
	 */
	frame_header_pack(&big, hdr);
	CU_ASSERT_EQUAL(write_all(fd, hdr, sizeof hdr), 0);
	memset(chunk, '{', sizeof chunk);
	CU_ASSERT_EQUAL_FATAL(write_all(fd, chunk, sizeof chunk), 0);
	CU_ASSERT_EQUAL_FATAL(raw_recv(fd, &h, &r), 0);
	CU_ASSERT_EQUAL(h.stream_id, 11);
	CU_ASSERT_EQUAL(r.code, ST_RESOURCE_EXHAUSTED);
	CU_ASSERT_STRING_EQUAL(
	    r.message, "message of 1048576 bytes exceeds max_message_bytes 65536");
	msg_response_clear(&r);
	for (i = 1; i < (1 << 20) / (int)sizeof chunk; i++)
		CU_ASSERT_EQUAL_FATAL(write_all(fd, chunk, sizeof chunk), 0);
	raw_request(fd, 15, "Echo", "{\"after\":true}");
	CU_ASSERT_EQUAL_FATAL(raw_recv(fd, &h, &r), 0);
	CU_ASSERT_EQUAL(h.stream_id, 15);
	CU_ASSERT_EQUAL(r.code, ST_OK);
	CU_ASSERT_TRUE(json_is_true(json_object_get(r.payload, "after")));
	msg_response_clear(&r);

	close(fd);
	wait_closed(&tc);
}

/* The server hangs up: the pending call and the next ones get UNAVAILABLE. */
static void
test_peer_closes(void)
{
	struct tconn tc;
	struct rpc_client *c = client_for(&tc);
	struct park_arg p = {c, "gone", 0, 0, {0}, NULL, false};
	unsigned base = parked_count;
	struct status st;
	pthread_t t;

	pthread_create(&t, NULL, park_thread, &p);
	wait_parked(base + 1);
	CU_ASSERT_EQUAL(rpc_client_call(c, SVC, "Hangup", NULL, 5000, NULL, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_STRING_EQUAL(st.msg, "connection closed by peer");
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(p.rc, -1);
	CU_ASSERT_EQUAL(p.st.code, ST_UNAVAILABLE);
	CU_ASSERT_TRUE(rpc_client_failed(c));
	CU_ASSERT_EQUAL(echo_i(c, 1, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	client_done(c, &tc);
}

struct sub_log {
	char got[16][16]; /* (lock) */
	unsigned n;	  /* (lock) */
	unsigned ends;	  /* (lock) on_data(NULL, 0) calls */
};

static void
sub_on_data(void *arg, const uint8_t *buf, size_t len)
{
	struct sub_log *l = arg;

	pthread_mutex_lock(&lock);
	if (buf == NULL) {
		CU_ASSERT_EQUAL(len, 0);
		l->ends++;
	} else if (l->n < 16 && len < 16) {
		memcpy(l->got[l->n], buf, len);
		l->got[l->n][len] = '\0';
		l->n++;
	}
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* Data frames reach on_data in order; the end of the transport calls on_data(NULL, 0) once. */
static void
test_subscribe(void)
{
	struct tconn tc;
	struct rpc_client *c = client_for(&tc);
	cleanup_json json_t *req = json_pack("{s:i}", "n", 5);
	struct sub_log l;
	struct status st;
	char want[16];
	unsigned i;

	memset(&l, 0, sizeof l);
	CU_ASSERT_EQUAL_FATAL(
	    rpc_client_subscribe(c, SVC, "Sub", req, 5000, sub_on_data, &l, &st), 0);
	pthread_mutex_lock(&lock);
	while (l.n < 5)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	for (i = 0; i < 5; i++) {
		snprintf(want, sizeof want, "event-%u", i);
		CU_ASSERT_STRING_EQUAL(l.got[i], want);
	}
	CU_ASSERT_EQUAL(echo_i(c, 3, &st), 0); /* the stream does not block calls */
	rpc_client_call(c, SVC, "Hangup", NULL, 5000, NULL, &st);
	pthread_mutex_lock(&lock);
	while (l.ends == 0)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	client_done(c, &tc);
	CU_ASSERT_EQUAL(l.ends, 1);
	CU_ASSERT_EQUAL(l.n, 5);
}

static void
probe_on_loop(void *arg)
{
	struct tconn *tc = arg;

	pthread_mutex_lock(&lock);
	tc->pending = rpc_conn_output_pending(tc->rc);
	tc->inflight = rpc_conn_inflight(tc->rc);
	pthread_mutex_unlock(&lock);
}

/* A client that never reads is throttled; another client is served meanwhile. */
static void
test_backpressure(void)
{
	struct tconn ta, tb;
	int fa = serve_pair(&ta);
	struct rpc_client *b = client_for(&tb);
	struct frame_header h;
	struct msg_response r;
	struct status st;
	unsigned i, big, got = 0;
	size_t pend;
	int64_t deadline = time_mono_ms() + 10000;

	for (i = 0; i < 100; i++)
		raw_request(fa, 2 * i + 1, "Big", "{}");
	/* The server handles Big requests until its output for A passes RPC_OUTPUT_HIGH. */
	for (;;) {
		run_on_loop(probe_on_loop, &ta);
		pthread_mutex_lock(&lock);
		big = ta.big;
		pend = ta.pending;
		pthread_mutex_unlock(&lock);
		if (pend > RPC_OUTPUT_HIGH || time_mono_ms() > deadline)
			break;
		usleep(1000); /* polling for a state, bounded by the deadline */
	}
	CU_ASSERT_TRUE_FATAL(pend > RPC_OUTPUT_HIGH);
	CU_ASSERT_EQUAL(echo_i(b, 5, &st), 0);
	CU_ASSERT_EQUAL(echo_i(b, 6, &st), 0);
	run_on_loop(probe_on_loop, &ta);
	pthread_mutex_lock(&lock);
	CU_ASSERT_EQUAL(ta.big, big); /* reading from A stopped */
	CU_ASSERT_TRUE(ta.pending < RPC_OUTPUT_HIGH + 512 * 1024);
	pthread_mutex_unlock(&lock);
	CU_ASSERT_TRUE(big < 100);
	/* A starts reading: every response arrives. */
	for (i = 0; i < 100; i++) {
		if (raw_recv(fa, &h, &r) != 0)
			break;
		if (h.stream_id == 2 * i + 1 && r.code == ST_OK)
			got++;
		msg_response_clear(&r);
	}
	CU_ASSERT_EQUAL(got, 100);
	pthread_mutex_lock(&lock);
	CU_ASSERT_EQUAL(ta.big, 100);
	pthread_mutex_unlock(&lock);
	close(fa);
	wait_closed(&ta);
	client_done(b, &tb);
}

/* Feed errors on the client: a bad response fails one call, an oversized frame the client. */
static void
test_client_protocol_errors(void)
{
	int sv[2];
	struct rpc_client *c;
	struct park_arg p;
	struct status st;
	uint8_t hdr[FRAME_HEADER_SIZE], buf[512];
	struct frame_header h, big;
	pthread_t t;

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c = rpc_client_new(sv[0], 1024);
	CU_ASSERT_EQUAL_FATAL(rpc_client_start_reader(c, &st), 0);

	/* Undecodable JSON for a known id: that call gets INTERNAL. */
	p = (struct park_arg){c, "x", 5000, 0, {0}, NULL, false};
	pthread_create(&t, NULL, park_thread, &p);
	CU_ASSERT_EQUAL_FATAL(read_full(sv[1], hdr, sizeof hdr), 0);
	frame_header_unpack(hdr, &h);
	CU_ASSERT_EQUAL(h.type, FRAME_TYPE_REQUEST);
	CU_ASSERT_EQUAL(h.stream_id % 2, 1);
	CU_ASSERT_TRUE_FATAL(h.length < sizeof buf);
	CU_ASSERT_EQUAL_FATAL(read_full(sv[1], buf, h.length), 0);
	raw_send(sv[1], h.stream_id, FRAME_TYPE_RESPONSE, 0, "not json");
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(p.rc, -1);
	CU_ASSERT_EQUAL(p.st.code, ST_INTERNAL);
	CU_ASSERT_FALSE(rpc_client_failed(c));

	/* An oversized frame: the whole client fails with INTERNAL "protocol error: ...". */
	p = (struct park_arg){c, "y", 5000, 0, {0}, NULL, false};
	pthread_create(&t, NULL, park_thread, &p);
	CU_ASSERT_EQUAL_FATAL(read_full(sv[1], hdr, sizeof hdr), 0);
	frame_header_unpack(hdr, &h);
	CU_ASSERT_EQUAL_FATAL(read_full(sv[1], buf, h.length), 0);
	big = (struct frame_header){4096, h.stream_id, FRAME_TYPE_RESPONSE, 0};
	frame_header_pack(&big, hdr);
	CU_ASSERT_EQUAL(write_all(sv[1], hdr, sizeof hdr), 0);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(p.rc, -1);
	CU_ASSERT_EQUAL(p.st.code, ST_INTERNAL);
	CU_ASSERT_NSTRING_EQUAL(p.st.msg, "protocol error: ", 16);
	CU_ASSERT_TRUE(rpc_client_failed(c));
	rpc_client_free(c);
	close(sv[1]);
}

/* Feeding by hand (no reader thread): responses, data and an unknown frame type. */
static void
test_client_feed(void)
{
	int sv[2];
	struct rpc_client *c;
	uint8_t *f;
	size_t len;
	char body[] = "{\"status\":{\"code\":0,\"message\":\"\"},\"payload\":{}}";

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c = rpc_client_new(sv[0], 1024);
	CU_ASSERT_EQUAL(rpc_client_fd(c), sv[0]);
	/* A response nobody waits for is discarded, fed one byte at a time. */
	f = frame_encode(1, FRAME_TYPE_RESPONSE, 0, body, strlen(body), &len);
	for (size_t i = 0; i < len; i++)
		CU_ASSERT_EQUAL(rpc_client_feed(c, f + i, 1), 0);
	free(f);
	CU_ASSERT_FALSE(rpc_client_failed(c));
	f = frame_encode(2, FRAME_TYPE_REQUEST, 0, "{}", 2, &len);
	CU_ASSERT_EQUAL(rpc_client_feed(c, f, len), -1);
	free(f);
	CU_ASSERT_TRUE(rpc_client_failed(c));
	rpc_client_free(c);
	close(sv[1]);
}

/*
 * rpc_client_partial_frame: nothing between frames; mid-frame, the progress and the time the
 * frame started, which later feeds of the same frame keep and the next frame replaces.
 */
static void
test_partial_frame(void)
{
	int sv[2];
	struct rpc_client *c;
	struct rpc_partial_frame pf;
	uint8_t *a, *b, *ab;
	size_t alen, blen;
	int64_t t0, t1, started;
	char body[] = "{\"status\":{\"code\":0,\"message\":\"\"},\"payload\":{}}";

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c = rpc_client_new(sv[0], 1024);
	CU_ASSERT_FALSE(rpc_client_partial_frame(c, &pf));
	a = frame_encode(1, FRAME_TYPE_RESPONSE, 0, body, strlen(body), &alen);
	b = frame_encode(3, FRAME_TYPE_RESPONSE, 0, body, strlen(body), &blen);

	/* A whole frame in one feed leaves nothing unfinished. */
	CU_ASSERT_EQUAL(rpc_client_feed(c, a, alen), 0);
	CU_ASSERT_FALSE(rpc_client_partial_frame(c, &pf));

	/* Part of a header: started now, length not known yet. */
	t0 = time_mono_ms();
	CU_ASSERT_EQUAL(rpc_client_feed(c, a, 3), 0);
	CU_ASSERT_TRUE_FATAL(rpc_client_partial_frame(c, &pf));
	CU_ASSERT_TRUE(pf.started_ms >= t0 && pf.started_ms <= time_mono_ms());
	CU_ASSERT_EQUAL(pf.received, 3);
	CU_ASSERT_EQUAL(pf.total, 0);
	started = pf.started_ms;

	/* More of the same frame, later: same start, header known. */
	usleep(30 * 1000); /* let the clock move, so a restamp would show */
	CU_ASSERT_EQUAL(rpc_client_feed(c, a + 3, 12), 0);
	CU_ASSERT_TRUE_FATAL(rpc_client_partial_frame(c, &pf));
	CU_ASSERT_EQUAL(pf.started_ms, started);
	CU_ASSERT_EQUAL(pf.received, 15);
	CU_ASSERT_EQUAL(pf.total, alen);
	CU_ASSERT_EQUAL(pf.stream_id, 1);

	/* The rest of it and the start of the next in one feed: the next frame's own start. */
	ab = xmalloc(alen - 15 + 4);
	memcpy(ab, a + 15, alen - 15);
	memcpy(ab + alen - 15, b, 4);
	t1 = time_mono_ms();
	CU_ASSERT_TRUE(t1 > started);
	CU_ASSERT_EQUAL(rpc_client_feed(c, ab, alen - 15 + 4), 0);
	CU_ASSERT_TRUE_FATAL(rpc_client_partial_frame(c, &pf));
	CU_ASSERT_TRUE(pf.started_ms >= t1);
	CU_ASSERT_EQUAL(pf.received, 4);
	CU_ASSERT_EQUAL(pf.total, 0);

	/* Its end: nothing unfinished again. */
	CU_ASSERT_EQUAL(rpc_client_feed(c, b + 4, blen - 4), 0);
	CU_ASSERT_FALSE(rpc_client_partial_frame(c, &pf));
	CU_ASSERT_FALSE(rpc_client_failed(c));
	free(ab);
	free(a);
	free(b);
	rpc_client_free(c);
	close(sv[1]);
}

/* ---- a peer that stops reading ---- */

#define STALL_BLOB (2u * 1024 * 1024) /* far more than a socketpair buffers */

struct stall_arg {
	struct rpc_client *c;
	int timeout_ms;
	int rc;
	struct status st;
	int64_t took_ms;
	bool done; /* (lock) */
};

/* Call Blob with a 2 MiB string: more than the socket takes while the peer does not read. */
static void *
stall_thread(void *arg)
{
	struct stall_arg *a = arg;
	cleanup_free char *big = xmalloc(STALL_BLOB);
	cleanup_json json_t *req = NULL;
	int64_t t0;

	memset(big, 'x', STALL_BLOB - 1);
	big[STALL_BLOB - 1] = '\0';
	req = json_pack("{s:s}", "blob", big);
	t0 = time_mono_ms();
	a->rc = rpc_client_call(a->c, SVC, "Blob", req, a->timeout_ms, NULL, &a->st);
	a->took_ms = time_mono_ms() - t0;
	pthread_mutex_lock(&lock);
	a->done = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Wait up to ms for a->done; true if it came. */
static bool
stall_wait(struct stall_arg *a, int ms)
{
	struct timespec ts;
	bool done;

	time_after_ms(CLOCK_REALTIME, ms, &ts);
	pthread_mutex_lock(&lock);
	while (!a->done)
		if (pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT)
			break;
	done = a->done;
	pthread_mutex_unlock(&lock);
	return done;
}

/*
 * The peer never reads: a 2 MiB call with a 200 ms timeout returns DEADLINE_EXCEEDED in time
 * (the send is bounded too). Part of its frame went out, so the whole client is failed, the
 * next call is UNAVAILABLE at once, and the socket is shut down (the peer reads EOF).
 */
static void
test_send_timeout(void)
{
	struct stall_arg a = {0};
	struct status st;
	uint8_t buf[65536];
	int64_t deadline;
	ssize_t n = -1;
	pthread_t t;
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	a.c = rpc_client_new(sv[0], MAX_MESSAGE);
	a.timeout_ms = 200;
	pthread_create(&t, NULL, stall_thread, &a);
	if (!stall_wait(&a, 5000)) {
		CU_FAIL("a 200 ms call blocked in send for 5 s");
		close(sv[1]); /* EPIPE sets the caller free */
		sv[1] = -1;
	}
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(a.rc, -1);
	CU_ASSERT_EQUAL(a.st.code, ST_DEADLINE_EXCEEDED);
	CU_ASSERT_TRUE(a.took_ms >= 200 && a.took_ms < 3000);
	CU_ASSERT_TRUE(rpc_client_failed(a.c));
	CU_ASSERT_EQUAL(rpc_client_call(a.c, SVC, "Echo", NULL, 200, NULL, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	CU_ASSERT_NSTRING_EQUAL(st.msg, "send timed out after ", 21);
	if (sv[1] >= 0) {
		/* Drain the torn frame: EOF follows, the client shut the socket down. */
		deadline = time_mono_ms() + 5000;
		do {
			if (fd_wait(sv[1], POLLIN, deadline) != 1)
				break;
			n = read(sv[1], buf, sizeof buf);
		} while (n > 0);
		CU_ASSERT_EQUAL(n, 0);
		CU_ASSERT_TRUE(time_mono_ms() < deadline);
		close(sv[1]);
	}
	rpc_client_free(a.c);
}

/*
 * One caller is blocked mid-frame with no timeout. A second caller's 200 ms covers its wait
 * for the writer's turn: DEADLINE_EXCEEDED without failing the client (it sent nothing).
 * rpc_client_fail then wakes the blocked sender at once with the failure's status.
 */
static void
test_send_turn_and_fail_wake(void)
{
	struct stall_arg a = {0}, b = {0};
	pthread_t ta, tb;
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	a.c = b.c = rpc_client_new(sv[0], MAX_MESSAGE);
	a.timeout_ms = 0; /* forever */
	b.timeout_ms = 200;
	pthread_create(&ta, NULL, stall_thread, &a);
	/* A's first bytes arrived: it holds the turn and blocks on the full socket. */
	CU_ASSERT_EQUAL(fd_wait(sv[1], POLLIN, time_mono_ms() + 5000), 1);
	pthread_create(&tb, NULL, stall_thread, &b);
	if (!stall_wait(&b, 5000)) {
		CU_FAIL("a 200 ms call waited 5 s for the writer's turn");
		close(sv[1]);
		sv[1] = -1;
	}
	pthread_join(tb, NULL);
	CU_ASSERT_EQUAL(b.rc, -1);
	CU_ASSERT_EQUAL(b.st.code, ST_DEADLINE_EXCEEDED);
	CU_ASSERT_TRUE(b.took_ms < 3000);
	CU_ASSERT_FALSE(rpc_client_failed(a.c));
	pthread_mutex_lock(&lock);
	CU_ASSERT_FALSE(a.done);
	pthread_mutex_unlock(&lock);

	rpc_client_fail(a.c, ST_UNAVAILABLE, "test: link down");
	if (!stall_wait(&a, 5000)) {
		CU_FAIL("rpc_client_fail did not wake a blocked sender");
		if (sv[1] >= 0)
			close(sv[1]);
		sv[1] = -1;
	}
	pthread_join(ta, NULL);
	CU_ASSERT_EQUAL(a.rc, -1);
	CU_ASSERT_EQUAL(a.st.code, ST_UNAVAILABLE);
	CU_ASSERT_STRING_EQUAL(a.st.msg, "test: link down");
	rpc_client_free(a.c);
	if (sv[1] >= 0)
		close(sv[1]);
}

/* 200 connect / call / close cycles leave the descriptor count where it was. */
static void
test_fd_cycles(void)
{
	struct tconn tc;
	struct rpc_client *c;
	struct status st;
	int before = testlib_fd_count(true), i;

	CU_ASSERT_TRUE(before >= 1); /* the loop's own eventfd at least */

	for (i = 0; i < 200; i++) {
		c = client_for(&tc);
		CU_ASSERT_EQUAL(echo_i(c, i, &st), 0);
		client_done(c, &tc);
	}
	CU_ASSERT_EQUAL(testlib_fd_count(true), before);
}

static void
stop_loop(void *arg)
{
	(void)arg;
	event_base_loopbreak(loop_base);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"concurrent calls", test_concurrent_calls},
	    {"out of order answers", test_out_of_order},
	    {"timeout then late answer", test_timeout},
	    {"error status", test_error_status},
	    {"server protocol errors", test_server_protocol_errors},
	    {"peer closes", test_peer_closes},
	    {"subscribe", test_subscribe},
	    {"backpressure", test_backpressure},
	    {"client protocol errors", test_client_protocol_errors},
	    {"client feed", test_client_feed},
	    {"partial frame: progress and start time", test_partial_frame},
	    {"send bounded by the call's timeout", test_send_timeout},
	    {"writer's turn bounded, fail wakes senders", test_send_turn_and_fail_wake},
	    {"fd cycles", test_fd_cycles},
	    {NULL, NULL},
	};
	struct timeval tv = {0, 0};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR); /* the oversized-frame case logs a warning by design */
	if (evthread_use_pthreads() != 0)
		fatalx("evthread_use_pthreads");
	loop_base = event_base_new();
	if (loop_base == NULL)
		fatalx("event_base_new");
	pthread_create(&loop_thread, NULL, loop_main, NULL);
	rc = unit_main("rpc", cases);
	{
		struct on_loop ol = {stop_loop, NULL, false};

		event_base_once(loop_base, -1, EV_TIMEOUT, on_loop_cb, &ol, &tv);
		pthread_join(loop_thread, NULL);
	}
	event_base_free(loop_base);
	libevent_global_shutdown();
	return rc;
}
