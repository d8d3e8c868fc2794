/*
 * qmp_proxy.c: a QMP man-in-the-middle for the hot-add failure tests.
 *
 *   qmp_proxy --listen PATH --upstream QEMU_QMP_PATH [--kill-on COMMAND --pid QEMU_PID]
 *             [--delay COMMAND:MS] [--gather COMMAND:N:MS]
 *
 * Listens on the Unix socket PATH; each accepted client gets its own connection to QEMU's QMP
 * socket and a thread that copies bytes both ways. Lines from the client are parsed (QMP
 * clients send one JSON object per line) and their "execute" name logged to stderr. When a
 * line executes the --kill-on command, the proxy SIGKILLs --pid first (once: a restarted QEMU
 * is left alone), then forwards the line, so QEMU dies between the shim's previous command and
 * that one. --delay holds every line executing COMMAND for MS milliseconds before forwarding,
 * to make bring-ups slow. --gather holds QEMU's answers to COMMAND until N of them are held or
 * the first has waited MS milliseconds, then delivers them together (QMP answers carry the
 * command's id, so a client matching by id is fine with the order): a VMM that completes
 * hot-adds in parallel, so that unserialized bring-ups really reach the guest at once. A
 * client whose upstream cannot be reached is closed at once, as QEMU's own socket would
 * refuse it. Runs until killed.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PROXY_LINE_MAX (1u << 20)
#define PROXY_IDS_MAX  64

static const char *upstream_path;
static const char *kill_cmd;
static pid_t kill_pid;
static atomic_bool killed;
static const char *delay_cmd;
static int delay_ms;
static const char *gather_cmd;
static int gather_n, gather_ms;

/* Bytes waiting for a newline. */
struct buf {
	char *p;
	size_t len;
};

struct pair {
	int client;
	int upstream;
	struct buf from_client;
	struct buf from_upstream;
	char *gather_ids[PROXY_IDS_MAX]; /* ids of gathered commands not yet answered */
	struct buf held;		 /* gathered answers, whole lines */
	int nheld;
	int64_t held_since; /* ms, monotonic */
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->len + n > PROXY_LINE_MAX)
		return -1;
	b->p = realloc(b->p, b->len + n + 1);
	if (b->p == NULL)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* Remember (id != NULL) or find and forget (remember false) a gathered command's id. */
static bool
gather_id(struct pair *pr, const char *id, bool remember)
{
	int i;

	for (i = 0; i < PROXY_IDS_MAX; i++) {
		if (remember && pr->gather_ids[i] == NULL) {
			pr->gather_ids[i] = strdup(id);
			return true;
		}
		if (!remember && pr->gather_ids[i] != NULL && strcmp(pr->gather_ids[i], id) == 0) {
			free(pr->gather_ids[i]);
			pr->gather_ids[i] = NULL;
			return true;
		}
	}
	return false;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Act on one client line (kill, delay), then forward it. */
static int
proxy_line(struct pair *pr, const char *line, size_t n)
{
	json_t *msg = json_loadb(line, n, 0, NULL);
	const char *cmd = json_string_value(json_object_get(msg, "execute"));

	if (cmd != NULL) {
		fprintf(stderr, "qmp_proxy: %s\n", cmd);
		if (kill_cmd != NULL && strcmp(cmd, kill_cmd) == 0 &&
		    !atomic_exchange(&killed, true)) {
			fprintf(stderr, "qmp_proxy: SIGKILL qemu pid %d before %s\n", (int)kill_pid,
			    cmd);
			kill(kill_pid, SIGKILL);
		}
		if (delay_cmd != NULL && strcmp(cmd, delay_cmd) == 0) {
			struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000};

			nanosleep(&ts, NULL);
		}
		if (gather_cmd != NULL && strcmp(cmd, gather_cmd) == 0 &&
		    json_is_string(json_object_get(msg, "id")))
			gather_id(pr, json_string_value(json_object_get(msg, "id")), true);
	}
	json_decref(msg);
	return write_all(pr->upstream, line, n);
}

/* Client bytes: forward every complete line (through proxy_line), keep the rest. */
static int
proxy_from_client(struct pair *pr, const char *buf, size_t n)
{
	struct buf *b = &pr->from_client;
	char *nl;

	if (buf_add(b, buf, n) < 0)
		return -1;
	while ((nl = memchr(b->p, '\n', b->len)) != NULL) {
		size_t k = (size_t)(nl - b->p) + 1;

		if (proxy_line(pr, b->p, k) < 0)
			return -1;
		memmove(b->p, b->p + k, b->len - k);
		b->len -= k;
	}
	return 0;
}

/* Deliver the gathered answers when enough are held or the first has waited long enough. */
static int
proxy_release(struct pair *pr, bool force)
{
	int r;

	if (pr->nheld == 0 ||
	    (!force && pr->nheld < gather_n && now_ms() - pr->held_since < gather_ms))
		return 0;
	fprintf(stderr, "qmp_proxy: releasing %d %s answer(s) together\n", pr->nheld, gather_cmd);
	r = write_all(pr->client, pr->held.p, pr->held.len);
	pr->held.len = 0;
	pr->nheld = 0;
	return r;
}

/* QEMU bytes: hold the answers to gathered commands, forward every other line. */
static int
proxy_from_upstream(struct pair *pr, const char *buf, size_t n)
{
	struct buf *b = &pr->from_upstream;
	char *nl;

	if (gather_cmd == NULL)
		return write_all(pr->client, buf, n);
	if (buf_add(b, buf, n) < 0)
		return -1;
	while ((nl = memchr(b->p, '\n', b->len)) != NULL) {
		size_t k = (size_t)(nl - b->p) + 1;
		json_t *msg = json_loadb(b->p, k, 0, NULL);
		const char *id = json_string_value(json_object_get(msg, "id"));
		int r;

		if (id != NULL && gather_id(pr, id, false)) {
			if (pr->nheld++ == 0)
				pr->held_since = now_ms();
			r = buf_add(&pr->held, b->p, k);
		} else {
			r = write_all(pr->client, b->p, k);
		}
		json_decref(msg);
		if (r < 0)
			return -1;
		memmove(b->p, b->p + k, b->len - k);
		b->len -= k;
	}
	return proxy_release(pr, false);
}

/* One client: copy both ways until either side ends. */
static void *
proxy_pair(void *arg)
{
	struct pair *pr = arg;
	struct pollfd pfd[2] = {{pr->client, POLLIN, 0}, {pr->upstream, POLLIN, 0}};
	char buf[65536];
	ssize_t n;
	int timeout, i;

	for (;;) {
		timeout = -1;
		if (pr->nheld > 0) {
			timeout = (int)(pr->held_since + gather_ms - now_ms());
			if (timeout < 0)
				timeout = 0;
		}
		if (poll(pfd, 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents != 0) {
			n = read(pr->client, buf, sizeof buf);
			if (n <= 0 || proxy_from_client(pr, buf, (size_t)n) < 0)
				break;
		}
		if (pfd[1].revents != 0) {
			n = read(pr->upstream, buf, sizeof buf);
			if (n <= 0 || proxy_from_upstream(pr, buf, (size_t)n) < 0)
				break;
		}
		if (proxy_release(pr, false) < 0)
			break;
	}
	proxy_release(pr, true);
	close(pr->client);
	close(pr->upstream);
	for (i = 0; i < PROXY_IDS_MAX; i++)
		free(pr->gather_ids[i]);
	free(pr->from_client.p);
	free(pr->from_upstream.p);
	free(pr->held.p);
	free(pr);
	return NULL;
}

static int
unix_socket(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa->sun_path) {
		fprintf(stderr, "qmp_proxy: path too long: %s\n", path);
		exit(2);
	}
	strcpy(sa->sun_path, path);
	return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

int
main(int argc, char **argv)
{
	static char gather_name[64];
	const char *listen_path = NULL;
	struct sockaddr_un sa;
	int lfd, i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--listen") == 0)
			listen_path = argv[i + 1];
		else if (strcmp(argv[i], "--upstream") == 0)
			upstream_path = argv[i + 1];
		else if (strcmp(argv[i], "--kill-on") == 0)
			kill_cmd = argv[i + 1];
		else if (strcmp(argv[i], "--pid") == 0)
			kill_pid = (pid_t)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--delay") == 0 && strchr(argv[i + 1], ':') != NULL) {
			static char name[64];

			snprintf(name, sizeof name, "%.*s",
			    (int)(strchr(argv[i + 1], ':') - argv[i + 1]), argv[i + 1]);
			delay_cmd = name;
			delay_ms = atoi(strchr(argv[i + 1], ':') + 1);
		} else if (strcmp(argv[i], "--gather") == 0 &&
			   sscanf(argv[i + 1], "%63[^:]:%d:%d", gather_name, &gather_n,
			       &gather_ms) == 3) {
			gather_cmd = gather_name;
		} else
			break;
	}
	if (i != argc || listen_path == NULL || upstream_path == NULL ||
	    (kill_cmd != NULL && kill_pid <= 0)) {
		fprintf(stderr, "usage: qmp_proxy --listen PATH --upstream PATH [--kill-on COMMAND "
				"--pid PID] [--delay COMMAND:MS] [--gather COMMAND:N:MS]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = unix_socket(listen_path, &sa);
	unlink(listen_path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 16) < 0) {
		perror("qmp_proxy: listen");
		return 1;
	}
	for (;;) {
		struct pair *pr;
		pthread_t t;
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), u;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("qmp_proxy: accept");
			return 1;
		}
		u = unix_socket(upstream_path, &sa);
		if (u < 0 || connect(u, (struct sockaddr *)&sa, sizeof sa) < 0) {
			fprintf(
			    stderr, "qmp_proxy: upstream %s: %s\n", upstream_path, strerror(errno));
			if (u >= 0)
				close(u);
			close(c);
			continue;
		}
		pr = calloc(1, sizeof *pr);
		if (pr == NULL)
			return 1;
		pr->client = c;
		pr->upstream = u;
		if (pthread_create(&t, NULL, proxy_pair, pr) != 0) {
			close(c);
			close(u);
			free(pr);
			continue;
		}
		pthread_detach(t);
	}
}
