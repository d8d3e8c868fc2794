/*
 * test_task.c: the task table (shim/task*.c) driven against a fake guest.
 *
 * The program links the task files with the real worker pool, stdio bridge, events and
 * configuration code, but not shim/guest.c: it defines guest_call and its neighbours itself,
 * answering the agent methods (CreateContainer, StartProcess, ExecProcess, SignalProcess,
 * DeleteProcess, ProcessState) from a small script each case sets. A method can be held: its
 * worker blocks inside guest_call until the case releases it, which is how a call is kept in
 * flight while another request races it. The agent's side of the link (exit events, the loss
 * of the link, a new link) reaches the table through task_guest_ops, the table guest.c calls.
 *
 * Requests come in as on a real connection: a socketpair whose server end is an rpc_conn
 * dispatching to task_dispatch, and whose client end the case writes request frames to and
 * reads response frames from. The case pumps the event loop (the completions of worker jobs
 * run there) until the response it wants has arrived. That a Wait is still parked is shown
 * without any timing: a later request on the same connection (State) is answered first, and
 * requests are dispatched in order.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "frame.h"
#include "shim.h"
#include "unit.h"
#include "util.h"

struct shim shim;

/* ---- the fake guest ---- */

#define FG_CALLS_MAX 64

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool connected;
	const char *hold; /* a method whose calls block until released */
	unsigned held;	  /* calls blocked now */
	bool release;	  /* let held calls go on */
	int release_code; /* ... answering this (ST_OK: the normal answer) */
	const char *fail; /* a method answered with fail_code */
	int fail_code;
	const char *state_id; /* the one container ProcessState knows (others: NOT_FOUND) */
	json_t *state_reply;  /* ... and its answer */
	char calls[FG_CALLS_MAX][32];
	unsigned ncalls;
	uint32_t next_pid;
} fg = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void
fg_reset(void)
{
	pthread_mutex_lock(&fg.lock);
	fg.connected = true;
	fg.hold = NULL;
	fg.held = 0;
	fg.release = false;
	fg.release_code = ST_OK;
	fg.fail = NULL;
	json_decref(fg.state_reply);
	fg.state_reply = NULL;
	fg.state_id = NULL;
	fg.ncalls = 0;
	fg.next_pid = 100;
	pthread_mutex_unlock(&fg.lock);
}

/* How many calls of method the fake received so far. */
static unsigned
fg_count(const char *method)
{
	unsigned n = 0;

	pthread_mutex_lock(&fg.lock);
	for (unsigned i = 0; i < fg.ncalls; i++)
		n += strcmp(fg.calls[i], method) == 0;
	pthread_mutex_unlock(&fg.lock);
	return n;
}

/* The normal answer of the fake agent to method. */
static json_t *
fg_answer(const char *method, json_t *payload, struct status *st)
{
	if (strcmp(method, "CreateContainer") == 0 || strcmp(method, "StartProcess") == 0)
		return json_pack("{s:i}", "pid", (int)fg.next_pid++);
	if (strcmp(method, "DeleteProcess") == 0)
		return json_pack(
		    "{s:i, s:s}", "exit_status", 0, "exited_at", "2026-01-02T03:04:05.000000006Z");
	if (strcmp(method, "ProcessState") == 0) {
		const char *id = json_string_value(json_object_get(payload, "id"));

		if (fg.state_id == NULL || id == NULL || strcmp(id, fg.state_id) != 0) {
			status_set(st, ST_NOT_FOUND, "process %s not found", id ?: "?");
			return NULL;
		}
		return json_incref(fg.state_reply);
	}
	return json_object();
}

int
guest_call(const char *method, json_t *payload, int timeout_ms, bool wait, json_t **resp,
    struct status *st)
{
	json_t *answer = NULL;
	int code = ST_OK;

	(void)timeout_ms;
	(void)wait;
	status_clear(st);
	pthread_mutex_lock(&fg.lock);
	if (fg.ncalls < FG_CALLS_MAX)
		snprintf(fg.calls[fg.ncalls++], sizeof fg.calls[0], "%s", method);
	if (!fg.connected) {
		code = ST_UNAVAILABLE;
	} else if (fg.hold != NULL && strcmp(fg.hold, method) == 0) {
		fg.held++;
		pthread_cond_broadcast(&fg.cond);
		while (!fg.release)
			pthread_cond_wait(&fg.cond, &fg.lock);
		fg.held--;
		code = fg.release_code;
	}
	if (code == ST_OK && fg.fail != NULL && strcmp(fg.fail, method) == 0)
		code = fg.fail_code;
	if (code == ST_OK)
		answer = fg_answer(method, payload, st);
	else
		status_set(st, code, "fake agent: %s failed", method);
	pthread_mutex_unlock(&fg.lock);
	if (st->code != ST_OK) {
		json_decref(answer);
		return -1;
	}
	if (resp != NULL)
		*resp = answer;
	else
		json_decref(answer);
	return 0;
}

bool
guest_connected(void)
{
	bool up;

	pthread_mutex_lock(&fg.lock);
	up = fg.connected;
	pthread_mutex_unlock(&fg.lock);
	return up;
}

/* Only a block rootfs asks for the link itself; no case here has one. */
struct guest *
guest_get(int wait_ms, struct status *st)
{
	(void)wait_ms;
	status_set(st, ST_UNAVAILABLE, "fake agent: no link object");
	return NULL;
}

void
guest_put(struct guest *g)
{
	(void)g;
}

static void
fg_release(int code)
{
	pthread_mutex_lock(&fg.lock);
	fg.release = true;
	fg.release_code = code;
	pthread_cond_broadcast(&fg.cond);
	pthread_mutex_unlock(&fg.lock);
}

/* ---- the containerd side: one connection ---- */

#define RESP_MAX 64

static struct {
	struct event_base *base;
	struct rpc_conn *conn;
	int cfd; /* the client end, blocking */
	uint32_t next_id;
	struct msg_response resp[RESP_MAX]; /* by stream id / 2 */
	bool have[RESP_MAX];
	char bundle[64];
	unsigned exits; /* task_request_exit calls */
} tc;

static void
tc_on_request(
    struct rpc_conn *c, uint32_t stream_id, uint8_t flags, struct msg_request *req, void *arg)
{
	(void)arg;
	task_dispatch(c, stream_id, flags, req);
}

static void
tc_on_close(struct rpc_conn *c, void *arg)
{
	(void)arg;
	task_conn_closed(c);
}

static void
tc_request_exit(void)
{
	tc.exits++;
}

/* Run the loop (bounded: 10 s) until n calls of the held method are blocked in the fake. */
static bool
fg_wait_held(unsigned n)
{
	int64_t deadline = time_mono_ms() + 10000;
	struct timeval tick = {0, 5000};
	bool ok;

	for (;;) {
		pthread_mutex_lock(&fg.lock);
		ok = fg.held >= n;
		pthread_mutex_unlock(&fg.lock);
		if (ok || time_mono_ms() >= deadline)
			return ok;
		event_base_loopexit(tc.base, &tick);
		event_base_dispatch(tc.base);
	}
}

/* Send one Task request; its stream id. */
static uint32_t
tc_send(const char *method, const char *payload_fmt, ...)
{
	cleanup_json json_t *pl = NULL;
	cleanup_free char *body = NULL;
	cleanup_free uint8_t *frame = NULL;
	size_t blen, flen;
	uint32_t id = tc.next_id;
	json_error_t err;
	va_list ap;

	tc.next_id += 2;
	va_start(ap, payload_fmt);
	pl = json_vpack_ex(&err, 0, payload_fmt, ap);
	va_end(ap);
	CU_ASSERT_FATAL(pl != NULL);
	body = msg_request_encode(PROTOCOL_TASK_SERVICE, method, pl, 0, &blen);
	frame = frame_encode(id, FRAME_TYPE_REQUEST, 0, body, blen, &flen);
	CU_ASSERT_FATAL(write_all(tc.cfd, frame, flen) == 0);
	return id;
}

/* Read every response frame already readable on the client end. */
static void
tc_read_ready(void)
{
	struct pollfd pfd = {.fd = tc.cfd, .events = POLLIN};

	while (poll(&pfd, 1, 0) == 1) {
		uint8_t hdr[FRAME_HEADER_SIZE];
		cleanup_free uint8_t *p = NULL;
		struct frame_header h;
		struct status st;
		unsigned slot;

		CU_ASSERT_FATAL(read_full(tc.cfd, hdr, sizeof hdr) == 0);
		frame_header_unpack(hdr, &h);
		CU_ASSERT_FATAL(h.type == FRAME_TYPE_RESPONSE && h.length < 65536);
		p = xmalloc(h.length + 1);
		CU_ASSERT_FATAL(read_full(tc.cfd, p, h.length) == 0);
		slot = h.stream_id / 2;
		CU_ASSERT_FATAL(slot < RESP_MAX && !tc.have[slot]);
		CU_ASSERT_FATAL(msg_response_decode(p, h.length, &tc.resp[slot], &st) == 0);
		tc.have[slot] = true;
	}
}

/* Run the loop until the answer to stream id is in (bounded: 10 s); NULL if it never came. */
static struct msg_response *
tc_wait(uint32_t id)
{
	int64_t deadline = time_mono_ms() + 10000;
	struct timeval tick = {0, 5000};

	while (!tc.have[id / 2] && time_mono_ms() < deadline) {
		event_base_loopexit(tc.base, &tick);
		event_base_dispatch(tc.base);
		tc_read_ready();
	}
	return tc.have[id / 2] ? &tc.resp[id / 2] : NULL;
}

/* Has stream id been answered (without running the loop)? */
static bool
tc_answered(uint32_t id)
{
	tc_read_ready();
	return tc.have[id / 2];
}

/* Send and wait: the answer's code; *out (optional) gets the response. */
#define TC_CALL(out, method, ...) tc_code(tc_wait(tc_send(method, __VA_ARGS__)), out)

static int
tc_code(struct msg_response *r, struct msg_response **out)
{
	CU_ASSERT_FATAL(r != NULL);
	if (out != NULL)
		*out = r;
	return r->code;
}

static json_int_t
tc_int(const struct msg_response *r, const char *key)
{
	return json_integer_value(json_object_get(r->payload, key));
}

static const char *
tc_str(const struct msg_response *r, const char *key)
{
	return json_string_value(json_object_get(r->payload, key)) ?: "";
}

/* The State of id/exec_id, as containerd sees it. */
static const char *
tc_state(const char *id, const char *exec_id)
{
	struct msg_response *r;

	CU_ASSERT_EQUAL(TC_CALL(&r, "State", "{s:s, s:s}", "id", id, "exec_id", exec_id), ST_OK);
	return tc_str(r, "status");
}

static void tc_teardown(void);

static void
tc_setup(void)
{
	int sv[2];

	/* A case stopped by a fatal assertion left its state: release and clear it first. */
	if (tc.conn != NULL) {
		fg_release(ST_UNAVAILABLE);
		tc_teardown();
	}
	fg_reset();
	tc.exits = 0;
	for (unsigned i = 0; i < RESP_MAX; i++)
		if (tc.have[i]) {
			msg_response_clear(&tc.resp[i]);
			tc.have[i] = false;
		}
	tc.next_id = 1;
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CU_ASSERT_FATAL(fd_set_nonblock(sv[0], true) == 0);
	static const struct rpc_server_ops ops = {
	    .on_request = tc_on_request,
	    .on_close = tc_on_close,
	};
	tc.conn = rpc_conn_new(tc.base, sv[0], 1u << 20, &ops, NULL);
	CU_ASSERT_FATAL(tc.conn != NULL);
	tc.cfd = sv[1];
}

/* End a case: the table is emptied (parked Waits answered) and the connection closed. */
static void
tc_teardown(void)
{
	int64_t deadline = time_mono_ms() + 10000;
	struct timeval tick = {0, 5000};
	bool idle = false;

	/* Let every job finish first: its completion must find the table it started from. */
	while (!idle && time_mono_ms() < deadline) {
		event_base_loopexit(tc.base, &tick);
		event_base_dispatch(tc.base);
		pthread_mutex_lock(&fg.lock);
		idle = fg.held == 0;
		pthread_mutex_unlock(&fg.lock);
	}
	task_shutdown();
	rpc_conn_close(tc.conn); /* drops the loop's reference */
	tc.conn = NULL;
	shim.exit_when_empty = false;
	event_base_loopexit(tc.base, &tick);
	event_base_dispatch(tc.base);
	close(tc.cfd);
	CU_ASSERT(task_table_empty());
}

/* Create container id and wait for the answer; its pid. */
static json_int_t
tc_create(const char *id)
{
	struct msg_response *r;

	CU_ASSERT_EQUAL_FATAL(
	    TC_CALL(&r, "Create", "{s:s, s:s}", "id", id, "bundle", tc.bundle), ST_OK);
	return tc_int(r, "pid");
}

/* The agent reports the exit of id/exec_id ("" for the init). */
static void
tc_agent_exit(const char *id, const char *exec_id, int status)
{
	cleanup_json json_t *ev = json_pack("{s:s, s:s, s:i, s:s}", "container_id", id, "id",
	    *exec_id != '\0' ? exec_id : id, "exit_status", status, "exited_at",
	    "2026-01-02T03:04:05.000000006Z");

	task_guest_ops.event(PROTOCOL_TOPIC_EXIT, ev);
}

/* ---- cases ---- */

/* Create, Start, the agent's exit event, Wait, Delete: the whole life of a container. */
static void
test_lifecycle(void)
{
	struct msg_response *r;
	json_int_t pid;
	uint32_t wait;

	tc_setup();
	pid = tc_create("c1");
	CU_ASSERT_EQUAL(pid, 100);
	CU_ASSERT_EQUAL(fg_count("CreateContainer"), 1);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "CREATED");
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Create", "{s:s, s:s}", "id", "c1", "bundle", tc.bundle),
	    ST_ALREADY_EXISTS);
	CU_ASSERT_EQUAL(TC_CALL(&r, "Start", "{s:s}", "id", "c1"), ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "pid"), 101);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "RUNNING");
	CU_ASSERT_EQUAL(
	    TC_CALL(NULL, "Start", "{s:s}", "id", "c1"), ST_FAILED_PRECONDITION); /* again */
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Delete", "{s:s}", "id", "c1"), ST_FAILED_PRECONDITION);

	/* Wait parks until the agent reports the exit. */
	wait = tc_send("Wait", "{s:s}", "id", "c1");
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "RUNNING");
	CU_ASSERT_FALSE(tc_answered(wait));
	tc_agent_exit("c1", "", 7);
	r = tc_wait(wait);
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(r->code, ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 7);
	CU_ASSERT_STRING_EQUAL(tc_str(r, "exited_at"), "2026-01-02T03:04:05.000000006Z");
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "STOPPED");
	/* A Wait after the exit answers at once. */
	CU_ASSERT_EQUAL(TC_CALL(&r, "Wait", "{s:s}", "id", "c1"), ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 7);
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Kill", "{s:s, s:i}", "id", "c1", "signal", 9), ST_NOT_FOUND);

	CU_ASSERT_EQUAL(TC_CALL(&r, "Delete", "{s:s}", "id", "c1"), ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 7);
	CU_ASSERT_EQUAL(tc_int(r, "pid"), 101);
	CU_ASSERT_EQUAL(fg_count("DeleteProcess"), 1);
	CU_ASSERT(task_table_empty());
	CU_ASSERT_EQUAL(TC_CALL(NULL, "State", "{s:s}", "id", "c1"), ST_NOT_FOUND);
	tc_teardown();
}

/* A failed CreateContainer leaves nothing in the table; a failed Exec leaves no exec. */
static void
test_bringup_failures(void)
{
	struct msg_response *r;

	tc_setup();
	fg.fail = "CreateContainer";
	fg.fail_code = ST_INTERNAL;
	CU_ASSERT_EQUAL(
	    TC_CALL(&r, "Create", "{s:s, s:s}", "id", "c1", "bundle", tc.bundle), ST_INTERNAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "CreateContainer failed"));
	CU_ASSERT(task_table_empty());
	fg.fail = NULL;
	tc_create("c1");
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Start", "{s:s}", "id", "c1"), ST_OK);
	fg.fail = "ExecProcess";
	fg.fail_code = ST_INVALID_ARGUMENT;
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Exec", "{s:s, s:s, s:{s:[s]}}", "id", "c1", "exec_id", "e1",
			    "spec", "args", "true"),
	    ST_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(
	    TC_CALL(NULL, "State", "{s:s, s:s}", "id", "c1", "exec_id", "e1"), ST_NOT_FOUND);
	/* A Create whose bundle cannot be read never reaches the agent. */
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Create", "{s:s, s:s}", "id", "c2", "bundle", "/nonexistent"),
	    ST_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(fg_count("CreateContainer"), 2);
	tc_teardown();
}

/* Exec: added, started, exits, waited for, deleted; the container outlives it. */
static void
test_exec(void)
{
	struct msg_response *r;
	uint32_t wait;

	tc_setup();
	tc_create("c1");
	/* Not before the container runs. */
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Exec", "{s:s, s:s, s:{s:[s]}}", "id", "c1", "exec_id", "e1",
			    "spec", "args", "true"),
	    ST_FAILED_PRECONDITION);
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Start", "{s:s}", "id", "c1"), ST_OK);
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Exec", "{s:s, s:s, s:{s:[s]}}", "id", "c1", "exec_id", "e1",
			    "spec", "args", "true"),
	    ST_OK);
	CU_ASSERT_EQUAL(fg_count("ExecProcess"), 1);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", "e1"), "CREATED");
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Exec", "{s:s, s:s, s:{s:[s]}}", "id", "c1", "exec_id", "e1",
			    "spec", "args", "true"),
	    ST_ALREADY_EXISTS);
	CU_ASSERT_EQUAL(TC_CALL(&r, "Start", "{s:s, s:s}", "id", "c1", "exec_id", "e1"), ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "pid"), 102);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", "e1"), "RUNNING");
	/* The container cannot go while its exec runs. */
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Kill", "{s:s, s:i}", "id", "c1", "signal", 15), ST_OK);
	CU_ASSERT_EQUAL(fg_count("SignalProcess"), 1);
	tc_agent_exit("c1", "", 143);
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Delete", "{s:s}", "id", "c1"), ST_FAILED_PRECONDITION);

	wait = tc_send("Wait", "{s:s, s:s}", "id", "c1", "exec_id", "e1");
	CU_ASSERT_STRING_EQUAL(tc_state("c1", "e1"), "RUNNING");
	CU_ASSERT_FALSE(tc_answered(wait));
	/* Another process's exit does not answer it; its own does. */
	tc_agent_exit("c1", "e2", 1);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", "e1"), "RUNNING");
	CU_ASSERT_FALSE(tc_answered(wait));
	tc_agent_exit("c1", "e1", 3);
	r = tc_wait(wait);
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(r->code, ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 3);
	CU_ASSERT_EQUAL(TC_CALL(&r, "Delete", "{s:s, s:s}", "id", "c1", "exec_id", "e1"), ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 3);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "STOPPED");
	CU_ASSERT_EQUAL(TC_CALL(&r, "Delete", "{s:s}", "id", "c1"), ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 143);
	CU_ASSERT(task_table_empty());
	tc_teardown();
}

/* While CreateContainer is in flight the container is "being created". */
static void
test_being_created(void)
{
	struct msg_response *r;
	uint32_t create;

	tc_setup();
	fg.hold = "CreateContainer";
	create = tc_send("Create", "{s:s, s:s}", "id", "c1", "bundle", tc.bundle);
	CU_ASSERT_FATAL(fg_wait_held(1));
	CU_ASSERT_EQUAL(
	    TC_CALL(&r, "Kill", "{s:s, s:i}", "id", "c1", "signal", 9), ST_FAILED_PRECONDITION);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "being created"));
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Start", "{s:s}", "id", "c1"), ST_FAILED_PRECONDITION);
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Delete", "{s:s}", "id", "c1"), ST_FAILED_PRECONDITION);
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Create", "{s:s, s:s}", "id", "c1", "bundle", tc.bundle),
	    ST_ALREADY_EXISTS);
	CU_ASSERT_FALSE(tc_answered(create));
	CU_ASSERT_EQUAL(fg_count("SignalProcess"), 0);
	fg_release(ST_OK);
	CU_ASSERT_EQUAL(tc_code(tc_wait(create), &r), ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "pid"), 100);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "CREATED");
	tc_teardown();
}

/* Delete is in flight when Start arrives: the process is going, Start finds nothing. */
static void
test_start_loses_to_delete(void)
{
	struct msg_response *r;
	uint32_t del;

	tc_setup();
	tc_create("c1");
	fg.hold = "DeleteProcess";
	del = tc_send("Delete", "{s:s}", "id", "c1");
	CU_ASSERT_FATAL(fg_wait_held(1));
	CU_ASSERT_EQUAL(TC_CALL(&r, "Start", "{s:s}", "id", "c1"), ST_NOT_FOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "being deleted"));
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Delete", "{s:s}", "id", "c1"), ST_FAILED_PRECONDITION);
	CU_ASSERT_EQUAL(fg_count("StartProcess"), 0);
	fg_release(ST_OK);
	CU_ASSERT_EQUAL(tc_code(tc_wait(del), &r), ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 0);
	CU_ASSERT(task_table_empty());
	tc_teardown();
}

/*
 * The agent link goes down: in-flight calls fail UNAVAILABLE (the link fails them), parked
 * Waits are answered UNAVAILABLE, the processes stay as they were, and a Wait while the link
 * is down answers UNAVAILABLE at once. When the link is back, resync asks the agent about
 * each running process and publishes the exit it missed.
 */
static void
test_agent_lost_and_resync(void)
{
	struct msg_response *r;
	uint32_t wait, wait2, kill;

	tc_setup();
	tc_create("c1");
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Start", "{s:s}", "id", "c1"), ST_OK);
	tc_create("c2");
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Start", "{s:s}", "id", "c2"), ST_OK);
	wait = tc_send("Wait", "{s:s}", "id", "c1");
	wait2 = tc_send("Wait", "{s:s}", "id", "c2");
	fg.hold = "SignalProcess";
	kill = tc_send("Kill", "{s:s, s:i}", "id", "c1", "signal", 15);
	CU_ASSERT_FATAL(fg_wait_held(1));

	/* As guest.c does: fail the link's calls, unpublish it, then tell the table. */
	pthread_mutex_lock(&fg.lock);
	fg.connected = false;
	pthread_mutex_unlock(&fg.lock);
	fg_release(ST_UNAVAILABLE);
	task_guest_ops.lost("agent link lost: test");
	r = tc_wait(wait);
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(r->code, ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "agent link lost: test"));
	CU_ASSERT_EQUAL(tc_code(tc_wait(wait2), NULL), ST_UNAVAILABLE);
	CU_ASSERT_EQUAL(tc_code(tc_wait(kill), NULL), ST_UNAVAILABLE);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "RUNNING");
	CU_ASSERT_STRING_EQUAL(tc_state("c2", ""), "RUNNING");
	CU_ASSERT_EQUAL(TC_CALL(&r, "Wait", "{s:s}", "id", "c1"), ST_UNAVAILABLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "not connected"));

	/*
	 * Back: c1 exited meanwhile (the agent reports its status); the agent does not know c2
	 * (it restarted): its exit is unknown, 255. Neither Wait answers before resync does.
	 */
	fg_reset();
	fg.state_id = "c1";
	fg.state_reply = json_pack("{s:s, s:i, s:s}", "status", PROTOCOL_STATE_STOPPED,
	    "exit_status", 9, "exited_at", "2026-01-02T03:04:05.000000006Z");
	fg.hold = "ProcessState";
	wait = tc_send("Wait", "{s:s}", "id", "c1");
	wait2 = tc_send("Wait", "{s:s}", "id", "c2");
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "RUNNING");
	task_guest_ops.resync();
	CU_ASSERT_FATAL(fg_wait_held(1));
	CU_ASSERT_FALSE(tc_answered(wait2));
	CU_ASSERT_FALSE(tc_answered(wait));
	fg_release(ST_OK);
	r = tc_wait(wait);
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(r->code, ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 9);
	r = tc_wait(wait2);
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(r->code, ST_OK);
	CU_ASSERT_EQUAL(tc_int(r, "exit_status"), 255);
	CU_ASSERT_EQUAL(fg_count("ProcessState"), 2);
	CU_ASSERT_STRING_EQUAL(tc_state("c1", ""), "STOPPED");
	CU_ASSERT_STRING_EQUAL(tc_state("c2", ""), "STOPPED");
	tc_teardown();
}

/* Shutdown without now: the shim exits once the last task is deleted. */
static void
test_shutdown_when_empty(void)
{
	tc_setup();
	tc_create("c1");
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Shutdown", "{}"), ST_OK);
	CU_ASSERT_EQUAL(tc.exits, 0);
	CU_ASSERT_EQUAL(TC_CALL(NULL, "Delete", "{s:s}", "id", "c1"), ST_OK);
	CU_ASSERT_EQUAL(tc.exits, 1);
	tc_teardown();
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"Create, Start, exit event, Wait, Delete", test_lifecycle},
	    {"failed bring-ups leave nothing behind", test_bringup_failures},
	    {"Exec lifecycle", test_exec},
	    {"calls during Create: being created", test_being_created},
	    {"Start losing to Delete: NOT_FOUND", test_start_loses_to_delete},
	    {"agent lost, then resync", test_agent_lost_and_resync},
	    {"Shutdown waits for the last Delete", test_shutdown_when_empty},
	    {NULL, NULL},
	};
	char dir[] = "/tmp/vmshim-test-task-XXXXXX", path[96];
	struct status st;
	FILE *f;
	int r;

	if (evthread_use_pthreads() != 0)
		return 2;
	if (mkdtemp(dir) == NULL)
		return 2;
	snprintf(tc.bundle, sizeof tc.bundle, "%s", dir);
	snprintf(path, sizeof path, "%s/config.json", dir);
	f = fopen(path, "we");
	if (f == NULL || fputs("{\"process\": {\"args\": [\"true\"]}}", f) < 0 || fclose(f) != 0)
		return 2;
	log_set_level(LOG_WARN);
	config_defaults(&shim.cfg);
	shim.base = event_base_new();
	shim.bringup = vm_bringup_new(false);
	tc.base = shim.base;
	task_init(tc_request_exit);
	if (shim.base == NULL || worker_init(shim.base, 4, 64, &st) < 0)
		return 2;
	r = unit_main("task", cases);
	if (tc.conn != NULL) {
		fg_release(ST_UNAVAILABLE);
		tc_teardown();
	}
	worker_shutdown();
	vm_bringup_free(shim.bringup);
	event_base_free(shim.base);
	config_free(&shim.cfg);
	json_decref(fg.state_reply);
	unlink(path);
	rmdir(dir);
	return r;
}
