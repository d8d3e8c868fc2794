/*
 * shim_limits_client.c: the client side of vmshim's limit tests (tests/integration/
 * shim_limits*.sh). Single-threaded, blocking Unix sockets, raw frames (common/frame.h and
 * msg.h), every wait bounded. Each mode checks what it observes, prints one line per check
 * ("ok ..." or "FAIL ...") and exits 0 when all passed, 1 otherwise, 2 on bad usage:
 *
 *   handshake SOCK MS        with handshake_timeout_ms = MS: a silent client and a half-frame
 *                            client are closed after MS; clients whose first frame the RPC
 *                            layer rejected (even stream id, malformed JSON) or ignored (a
 *                            data frame) are active and still answered after 2 x MS
 *   hold SOCK N SECONDS      open N connections, send a Connect on each, count answered vs
 *                            closed by the shim, hold them SECONDS, close them
 *   maxconn SOCK N           N answered connections; the N+1th is closed unanswered; after
 *                            one of the N closes, a new connection is answered (bounded retry)
 *   queuefill SOCK ID N FILE send N Pids on ID then one more, which must get
 *                            RESOURCE_EXHAUSTED within 1 s; write "exhausted" to FILE, then
 *                            collect the other answers (20 s): every one OK or
 *                            RESOURCE_EXHAUSTED, at least N - 1 OK
 *   waitsdrop SOCK ID N      park N Waits on ID (a State answered after them proves they are
 *                            parked), then close the connection
 *   agentcall AGENTSOCK METHOD JSON  one call to vmshim-agent over the hybrid socket (port
 *                            1024); prints "OK payload" or "CODE message"
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "msg.h"
#include "protocol.h"
#include "rpc.h"
#include "testlib.h"
#include "transport.h"
#include "util.h"

static uint32_t next_id = 1;
static int fails;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		fails++;
}

static int
lc_send_frame(int fd, uint32_t sid, uint8_t type, const void *p, size_t len)
{
	size_t n;
	cleanup_free uint8_t *buf = frame_encode(sid, type, 0, p, len, &n);

	return write_all(fd, buf, n);
}

static uint32_t
lc_send_request(int fd, const char *method, json_t *payload)
{
	cleanup_free char *buf = NULL;
	uint32_t sid = next_id;
	size_t len;

	next_id += 2;
	buf = msg_request_encode(PROTOCOL_TASK_SERVICE, method, payload, 0, &len);
	if (lc_send_frame(fd, sid, FRAME_TYPE_REQUEST, buf, len) < 0)
		return 0;
	return sid;
}

/*
 * Read one response within timeout_ms: its code (and stream id), or -1 for EOF/reset, -2 for
 * a timeout. Data frames are skipped.
 */
static int
lc_read_response(int fd, int timeout_ms, uint32_t *sid)
{
	int64_t deadline = time_mono_ms() + timeout_ms;
	uint8_t hdr[FRAME_HEADER_SIZE];
	struct frame_header h;
	struct msg_response r;
	struct status st;
	int code, w;

	for (;;) {
		cleanup_free uint8_t *p = NULL;

		w = fd_wait(fd, POLLIN, deadline);
		if (w <= 0)
			return -2;
		if (read_full(fd, hdr, sizeof hdr) < 0)
			return -1;
		frame_header_unpack(hdr, &h);
		if (h.length > 16u << 20)
			return -1;
		p = xmalloc(h.length + 1);
		if (read_full(fd, p, h.length) < 0)
			return -1;
		if (h.type != FRAME_TYPE_RESPONSE)
			continue;
		if (msg_response_decode(p, h.length, &r, &st) < 0)
			return -1;
		code = r.code;
		msg_response_clear(&r);
		if (sid != NULL)
			*sid = h.stream_id;
		return code;
	}
}

/* One Connect on fd: its code, -1 closed, -2 timeout. */
static int
lc_connect_call(int fd, int timeout_ms)
{
	cleanup_json json_t *pl = json_pack("{s:s}", "id", "x");

	if (lc_send_request(fd, "Connect", pl) == 0)
		return -1;
	return lc_read_response(fd, timeout_ms, NULL);
}

/* Is fd closed by the peer within timeout_ms (EOF or reset; nothing else arriving)? */
static bool
lc_closed_within(int fd, int timeout_ms)
{
	char c;

	if (fd_wait(fd, POLLIN, time_mono_ms() + timeout_ms) <= 0)
		return false;
	return read(fd, &c, 1) <= 0;
}

static int
mode_handshake(const char *sock, int ms)
{
	static const uint8_t half[5] = {0, 0, 0, 40, 0};
	static const char bad_json[] = "{\"service\":";
	int silent = testlib_connect(sock), halff = testlib_connect(sock);
	int even = testlib_connect(sock), badj = testlib_connect(sock),
	    data = testlib_connect(sock);
	cleanup_free char *req = NULL;
	int64_t t0 = time_mono_ms(), elapsed;
	bool closed;
	size_t len;
	int code;

	if (silent < 0 || halff < 0 || even < 0 || badj < 0 || data < 0) {
		check(false, "connect");
		return 1;
	}
	write_all(halff, half, sizeof half);
	req = msg_request_encode(PROTOCOL_TASK_SERVICE, "Connect", NULL, 0, &len);
	lc_send_frame(even, 2, FRAME_TYPE_REQUEST, req, len);
	code = lc_read_response(even, 2000, NULL);
	check(code == ST_INVALID_ARGUMENT, "even stream id answered INVALID_ARGUMENT (%d)", code);
	lc_send_frame(badj, 1, FRAME_TYPE_REQUEST, bad_json, sizeof bad_json - 1);
	code = lc_read_response(badj, 2000, NULL);
	check(code == ST_INVALID_ARGUMENT, "malformed JSON answered INVALID_ARGUMENT (%d)", code);
	next_id = 3;
	lc_send_frame(data, 1, FRAME_TYPE_DATA, "x", 1);

	closed = lc_closed_within(silent, ms + 2000);
	elapsed = time_mono_ms() - t0;
	check(closed, "silent client closed after %lld ms (limit %d)", (long long)elapsed, ms);
	check(elapsed >= ms - 50, "not before handshake_timeout_ms");
	closed = lc_closed_within(halff, 2000);
	check(closed, "half-frame client closed after %lld ms", (long long)(time_mono_ms() - t0));
	/* Well past the timeout, the clients that sent a complete frame are still served. */
	while (time_mono_ms() - t0 < 2 * ms)
		usleep(20000);
	next_id = 5;
	code = lc_connect_call(even, 2000);
	check(code == 0,
	    "client whose first frame was rejected (even id) still answered after "
	    "%lld ms (%d)",
	    (long long)(time_mono_ms() - t0), code);
	code = lc_connect_call(badj, 2000);
	check(code == 0, "client whose first frame was malformed JSON still answered (%d)", code);
	code = lc_connect_call(data, 2000);
	check(code == 0, "client whose first frame was an ignored data frame still answered (%d)",
	    code);
	close(silent);
	close(halff);
	close(even);
	close(badj);
	close(data);
	return fails ? 1 : 0;
}

static int
mode_hold(const char *sock, int n, int seconds)
{
	int *fds = xcalloc((size_t)n, sizeof *fds);
	int connected = 0, answered = 0, closed = 0, other = 0;
	cleanup_json json_t *pl = json_pack("{s:s}", "id", "x");

	for (int i = 0; i < n; i++) {
		fds[i] = testlib_connect(sock);
		if (fds[i] >= 0) {
			connected++;
			lc_send_request(fds[i], "Connect", pl);
		}
	}
	for (int i = 0; i < n; i++) {
		int code;

		if (fds[i] < 0)
			continue;
		code = lc_read_response(fds[i], 3000, NULL);
		if (code == 0)
			answered++;
		else if (code == -1)
			closed++;
		else
			other++;
	}
	printf("hold: %d attempts, %d connected, %d answered, %d closed by the shim, %d other\n", n,
	    connected, answered, closed, other);
	fflush(stdout);
	sleep((unsigned)seconds);
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return 0;
}

static int
mode_maxconn(const char *sock, int n)
{
	int *fds = xcalloc((size_t)n, sizeof *fds);
	int extra, code = -1, tries;

	for (int i = 0; i < n; i++) {
		fds[i] = testlib_connect(sock);
		code = fds[i] >= 0 ? lc_connect_call(fds[i], 2000) : -1;
		if (code != 0) {
			check(false, "connection %d of %d answered (%d)", i + 1, n, code);
			return 1;
		}
	}
	check(true, "%d connections answered", n);
	extra = testlib_connect(sock);
	check(extra >= 0 && lc_connect_call(extra, 2000) == -1,
	    "connection %d closed without an answer", n + 1);
	if (extra >= 0)
		close(extra);
	close(fds[0]);
	/* The slot frees when the loop has seen the close: retry, bounded. */
	for (tries = 1; tries <= 50; tries++) {
		extra = testlib_connect(sock);
		code = extra >= 0 ? lc_connect_call(extra, 2000) : -1;
		if (code == 0)
			break;
		if (extra >= 0)
			close(extra);
		extra = -1;
		usleep(50000);
	}
	check(code == 0, "after one closed, a new connection was answered (attempt %d)", tries);
	if (extra >= 0)
		close(extra);
	for (int i = 1; i < n; i++)
		close(fds[i]);
	free(fds);
	return fails ? 1 : 0;
}

static int
mode_queuefill(const char *sock, const char *id, int n, const char *file)
{
	cleanup_json json_t *pl = json_pack("{s:s}", "id", id);
	int fd = testlib_connect(sock), code, ok = 0, exhausted = 0, got = 0;
	uint32_t last, sid;
	int64_t t0;
	FILE *f;

	if (fd < 0) {
		check(false, "connect");
		return 1;
	}
	for (int i = 0; i < n; i++)
		lc_send_request(fd, "Pids", pl);
	t0 = time_mono_ms();
	last = lc_send_request(fd, "Pids", pl);
	/*
	 * One worker plus a queue of n - 1 hold n calls. Which call overflows depends on when the
	 * worker took the first one off the queue (call n + 1 if it already had, call n if not),
	 * so wait for the first RESOURCE_EXHAUSTED: it must come at once, not after the stuck
	 * worker.
	 */
	for (;;) {
		code = lc_read_response(fd, 1000, &sid);
		if (code < 0)
			break;
		got++;
		if (code == ST_RESOURCE_EXHAUSTED)
			exhausted++;
		else if (code == 0)
			ok++;
		if (code == ST_RESOURCE_EXHAUSTED)
			break;
	}
	check(code == ST_RESOURCE_EXHAUSTED && (sid == last || sid == last - 2),
	    "call %d answered RESOURCE_EXHAUSTED in %lld ms while the worker was stuck (%d)",
	    code == ST_RESOURCE_EXHAUSTED && sid != last ? n : n + 1,
	    (long long)(time_mono_ms() - t0), code);
	f = fopen(file, "we");
	if (f != NULL) {
		fputs("exhausted\n", f);
		fclose(f);
	}
	while (got < n + 1) {
		code = lc_read_response(fd, 20000, NULL);
		if (code < 0)
			break;
		got++;
		if (code == ST_RESOURCE_EXHAUSTED)
			exhausted++;
		else if (code == 0)
			ok++;
	}
	check(got == n + 1 && ok + exhausted == got && ok >= n - 1,
	    "after the agent resumed: %d answers, %d OK, %d RESOURCE_EXHAUSTED", got, ok,
	    exhausted);
	close(fd);
	return fails ? 1 : 0;
}

static int
mode_waitsdrop(const char *sock, const char *id, int n)
{
	cleanup_json json_t *pl = json_pack("{s:s}", "id", id);
	int fd = testlib_connect(sock), code;

	if (fd < 0) {
		check(false, "connect");
		return 1;
	}
	for (int i = 0; i < n; i++)
		lc_send_request(fd, "Wait", pl);
	lc_send_request(fd, "State", pl);
	code = lc_read_response(fd, 5000, NULL);
	check(code == 0, "%d Waits parked (the State sent after them answered %d)", n, code);
	close(fd);
	return fails ? 1 : 0;
}

static int
mode_agentcall(const char *sock, const char *method, const char *json)
{
	struct endpoint ep;
	struct rpc_client *c;
	struct status st;
	cleanup_free char *epstr = NULL, *out = NULL;
	cleanup_json json_t *pl = json_loads(json, 0, NULL), *resp = NULL;
	int fd;

	xasprintf(&epstr, "uds:%s:1024", sock);
	if (pl == NULL || endpoint_parse(epstr, &ep, &st) < 0)
		return 2;
	fd = transport_connect(&ep, 2000, &st);
	if (fd < 0) {
		printf("%s %s\n", status_code_name(st.code), st.msg);
		return 1;
	}
	c = rpc_client_new(fd, 4u << 20);
	if (rpc_client_start_reader(c, &st) < 0) {
		rpc_client_free(c);
		return 1;
	}
	if (rpc_client_call(c, PROTOCOL_AGENT_SERVICE, method, pl, 5000, &resp, &st) < 0) {
		printf("%s %s\n", status_code_name(st.code), st.msg);
	} else {
		out = json_dumps(resp, JSON_COMPACT | JSON_SORT_KEYS);
		printf("OK %s\n", out);
	}
	rpc_client_free(c);
	return 0;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "handshake") == 0)
		return mode_handshake(argv[2], atoi(argv[3]));
	if (argc == 5 && strcmp(argv[1], "hold") == 0)
		return mode_hold(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && strcmp(argv[1], "maxconn") == 0)
		return mode_maxconn(argv[2], atoi(argv[3]));
	if (argc == 6 && strcmp(argv[1], "queuefill") == 0)
		return mode_queuefill(argv[2], argv[3], atoi(argv[4]), argv[5]);
	if (argc == 5 && strcmp(argv[1], "waitsdrop") == 0)
		return mode_waitsdrop(argv[2], argv[3], atoi(argv[4]));
	if (argc == 5 && strcmp(argv[1], "agentcall") == 0)
		return mode_agentcall(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: shim_limits_client handshake|hold|maxconn|queuefill|waitsdrop|"
			"agentcall SOCK ...\n");
	return 2;
}
