/*
 * vm-qmp.c: a QMP client for QEMU, one channel per VM.
 *
 * Threads: commands are issued from worker threads only (never the loop thread); each channel
 * has one reader thread that reads QEMU's lines, hands each reply to the command waiting for
 * its id and keeps the last QMP_EVENT_RING events (with sequence numbers) for waiters, so an
 * event that arrives before anyone waits for it is not lost. q->mu guards the connection
 * state, the pending list and the event ring; q->write_mu exists only to serialize writes of
 * whole command lines. Neither is held across a blocking read.
 *
 * Connection: opened lazily by the first command (greeting, then qmp_capabilities). When QEMU
 * goes away the reader fails every pending command with UNAVAILABLE, logs it, and exits; the
 * next command joins it and reconnects. The socket is owned by the channel and closed exactly
 * once, by whoever tears that connection down (the reconnecting command or qmp_free), after
 * the reader thread has been joined, so no thread can still be using it.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "transport.h"
#include "util.h"
#include "vm.h"

#define QMP_LINE_MAX   (4u * 1024 * 1024) /* longest line we accept from QEMU */
#define QMP_EVENT_RING 64

struct qmp_pending {
	struct qmp_pending *next;
	char id[32];
	bool done;
	json_t *ret;
	struct status st;
};

struct qmp_event {
	uint64_t seq;
	char name[64];
	char device[128];
};

struct qmp {
	char *path;
	int connect_timeout_ms;

	pthread_mutex_t mu; /* guards everything below but path */
	pthread_cond_t cond;
	int fd;	    /* -1 when not connected */
	bool alive; /* the reader is running on fd */
	bool reader_started;
	pthread_t reader;
	int wake_fd; /* eventfd: tells the reader to stop */
	uint64_t next_id;
	struct qmp_pending *pending;
	struct qmp_event ring[QMP_EVENT_RING];
	uint64_t event_seq;

	pthread_mutex_t write_mu; /* serializes whole-line writes on fd */
};

/* Map QMP's error class to a gRPC status code. */
static int
qmp_error_code(const char *cls)
{
	if (strcmp(cls, "DeviceNotFound") == 0)
		return ST_NOT_FOUND;
	if (strcmp(cls, "CommandNotFound") == 0)
		return ST_UNIMPLEMENTED;
	return ST_FAILED_PRECONDITION;
}

void
qmp_msg_clear(struct qmp_msg *m)
{
	if (m->root != NULL)
		json_decref(m->root);
	memset(m, 0, sizeof *m);
}

/* Classify one line from QEMU; every field is checked before use. */
int
qmp_msg_parse(const char *line, size_t len, struct qmp_msg *out, struct status *st)
{
	cleanup_json json_t *root = NULL;
	json_error_t jerr;
	json_t *v, *id, *err, *cls, *desc;

	memset(out, 0, sizeof *out);
	root = json_loadb(line, len, 0, &jerr);
	if (root == NULL)
		return status_set(st, ST_INTERNAL, "QMP: malformed JSON: %s", jerr.text);
	if (!json_is_object(root))
		return status_set(st, ST_INTERNAL, "QMP: message is not an object");

	id = json_object_get(root, "id");
	if (id != NULL && !json_is_string(id))
		id = NULL; /* ours are strings; anything else is no one's */

	if ((v = json_object_get(root, "QMP")) != NULL) {
		out->kind = QMP_MSG_GREETING;
	} else if ((v = json_object_get(root, "return")) != NULL) {
		out->kind = QMP_MSG_RETURN;
		out->ret = v;
		out->id = id ? json_string_value(id) : NULL;
	} else if ((err = json_object_get(root, "error")) != NULL) {
		if (!json_is_object(err))
			return status_set(st, ST_INTERNAL, "QMP: error is not an object");
		cls = json_object_get(err, "class");
		desc = json_object_get(err, "desc");
		if (!json_is_string(cls) || !json_is_string(desc))
			return status_set(st, ST_INTERNAL, "QMP: error without class/desc strings");
		out->kind = QMP_MSG_ERROR;
		out->err_class = json_string_value(cls);
		out->err_desc = json_string_value(desc);
		out->id = id ? json_string_value(id) : NULL;
	} else if ((v = json_object_get(root, "event")) != NULL) {
		if (!json_is_string(v))
			return status_set(st, ST_INTERNAL, "QMP: event name is not a string");
		out->kind = QMP_MSG_EVENT;
		out->event = json_string_value(v);
		out->data = json_object_get(root, "data");
		if (out->data != NULL && !json_is_object(out->data))
			out->data = NULL;
	} else {
		return status_set(st, ST_INTERNAL, "QMP: message of unknown kind");
	}
	out->root = steal_ptr(&root);
	return 0;
}

struct qmp *
qmp_new(const char *path, int connect_timeout_ms)
{
	struct qmp *q = xcalloc(1, sizeof *q);
	pthread_condattr_t ca;

	q->path = xstrdup(path);
	q->connect_timeout_ms = connect_timeout_ms > 0 ? connect_timeout_ms : 5000;
	q->fd = -1;
	q->wake_fd = -1;
	pthread_mutex_init(&q->mu, NULL);
	pthread_mutex_init(&q->write_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	return q;
}

/* Fail every pending command with code/message. Called with q->mu held. */
static void
qmp_fail_pending(struct qmp *q, int code, const char *msg)
{
	struct qmp_pending *p;

	for (p = q->pending; p != NULL; p = p->next) {
		if (p->done)
			continue;
		p->done = true;
		status_set(&p->st, code, "%s", msg);
	}
	pthread_cond_broadcast(&q->cond);
}

/* Handle one complete line on the reader thread. */
static void
qmp_dispatch_line(struct qmp *q, const char *line, size_t len)
{
	struct qmp_msg m;
	struct status st;
	struct qmp_pending *p;
	struct qmp_event *e;
	json_t *dev;

	if (len == 0)
		return;
	if (qmp_msg_parse(line, len, &m, &st) < 0) {
		log_warn("QMP %s: ignoring a bad message: %s", q->path, st.msg);
		return;
	}
	pthread_mutex_lock(&q->mu);
	switch (m.kind) {
	case QMP_MSG_RETURN:
	case QMP_MSG_ERROR:
		for (p = q->pending; p != NULL; p = p->next)
			if (!p->done && m.id != NULL && strcmp(p->id, m.id) == 0)
				break;
		if (p == NULL)
			break; /* a late answer to a command that timed out */
		p->done = true;
		if (m.kind == QMP_MSG_RETURN)
			p->ret = json_incref(m.ret);
		else
			status_set(&p->st, qmp_error_code(m.err_class), "%s", m.err_desc);
		pthread_cond_broadcast(&q->cond);
		break;
	case QMP_MSG_EVENT:
		q->event_seq++;
		e = &q->ring[q->event_seq % QMP_EVENT_RING];
		e->seq = q->event_seq;
		snprintf(e->name, sizeof e->name, "%s", m.event);
		dev = m.data ? json_object_get(m.data, "device") : NULL;
		snprintf(e->device, sizeof e->device, "%s",
		    json_is_string(dev) ? json_string_value(dev) : "");
		log_debug("QMP %s: event %s %s", q->path, e->name, e->device);
		pthread_cond_broadcast(&q->cond);
		break;
	case QMP_MSG_GREETING:
		break;
	}
	/*
	 * Drop our reference before unlocking: jansson's refcounts are atomics that TSan cannot
	 * see, and the mutex is what orders this decref before the waiter's use and decref.
	 */
	qmp_msg_clear(&m);
	pthread_mutex_unlock(&q->mu);
}

/* The reader thread: lines in, until EOF, an error, or qmp_free wakes it. */
static void *
qmp_reader(void *arg)
{
	struct qmp *q = arg;
	struct pollfd pfd[2];
	size_t cap = 65536, have = 0, start, i;
	char *buf = xmalloc(cap);
	const char *why = "QEMU closed the QMP connection";
	ssize_t n;

	pfd[0].fd = q->fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = q->wake_fd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			why = "QMP poll failed";
			break;
		}
		if (pfd[1].revents != 0) {
			why = "QMP channel closed";
			break;
		}
		if (have == cap) {
			if (cap >= QMP_LINE_MAX) {
				why = "QMP line too long";
				break;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(q->fd, buf + have, cap - have);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (n < 0)
				why = "QMP read failed";
			break;
		}
		have += (size_t)n;
		start = 0;
		for (i = 0; i < have; i++) {
			if (buf[i] != '\n')
				continue;
			qmp_dispatch_line(q, buf + start, i - start);
			start = i + 1;
		}
		memmove(buf, buf + start, have - start);
		have -= start;
	}
	free(buf);
	pthread_mutex_lock(&q->mu);
	q->alive = false;
	qmp_fail_pending(q, ST_UNAVAILABLE, why);
	pthread_mutex_unlock(&q->mu);
	if (strcmp(why, "QMP channel closed") != 0)
		log_warn("QMP %s: %s; pending commands failed, will reconnect", q->path, why);
	return NULL;
}

/* Tear down a dead or live connection: wake and join the reader, then close. mu not held. */
static void
qmp_disconnect(struct qmp *q)
{
	uint64_t one = 1;

	if (q->reader_started) {
		if (write(q->wake_fd, &one, sizeof one) < 0)
			log_warn("QMP %s: cannot wake the reader: %s", q->path, strerror(errno));
		pthread_join(q->reader, NULL);
		q->reader_started = false;
	}
	if (q->fd >= 0)
		close(q->fd);
	if (q->wake_fd >= 0)
		close(q->wake_fd);
	q->fd = -1;
	q->wake_fd = -1;
}

/* Read one line byte by byte during the handshake (before the reader thread exists). */
static int
qmp_read_line(int fd, char *buf, size_t cap, int64_t deadline, struct status *st)
{
	size_t n = 0;
	ssize_t r;
	int w;

	for (;;) {
		w = fd_wait(fd, POLLIN, deadline);
		if (w == 0)
			return status_set(st, ST_DEADLINE_EXCEEDED, "QMP handshake timed out");
		if (w < 0)
			return status_errno(st, ST_UNAVAILABLE, w, "QMP handshake");
		r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return status_set(st, ST_UNAVAILABLE, "QMP handshake: connection closed");
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		if (++n == cap - 1)
			return status_set(st, ST_UNAVAILABLE, "QMP handshake: line too long");
	}
}

/*
 * Connect, read the greeting, negotiate capabilities and start the reader. Called from a
 * command with q->mu NOT held and no reader running; serialised by write_mu.
 */
static int
qmp_connect(struct qmp *q, struct status *st)
{
	struct endpoint ep = {.kind = ENDPOINT_UNIX};
	int64_t deadline = time_mono_ms() + q->connect_timeout_ms;
	static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
	char line[4096];
	struct qmp_msg m;
	int fd, r;

	if (strlen(q->path) >= sizeof ep.path)
		return status_set(st, ST_INVALID_ARGUMENT, "QMP socket path too long: %s", q->path);
	snprintf(ep.path, sizeof ep.path, "%s", q->path);
	fd = transport_connect(&ep, q->connect_timeout_ms, st);
	if (fd < 0)
		return status_wrap(st, "QMP %s", q->path);
	/* Greeting, then the capabilities answer (events may come in between). */
	r = qmp_read_line(fd, line, sizeof line, deadline, st);
	if (r < 0 || qmp_msg_parse(line, (size_t)r, &m, st) < 0)
		goto fail;
	r = m.kind == QMP_MSG_GREETING;
	qmp_msg_clear(&m);
	if (!r) {
		status_set(st, ST_UNAVAILABLE, "QMP: no greeting");
		goto fail;
	}
	if ((r = write_all_deadline(fd, caps, sizeof caps - 1, deadline)) < 0) {
		status_errno(st, ST_UNAVAILABLE, r, "QMP qmp_capabilities");
		goto fail;
	}
	for (;;) {
		r = qmp_read_line(fd, line, sizeof line, deadline, st);
		if (r < 0 || qmp_msg_parse(line, (size_t)r, &m, st) < 0)
			goto fail;
		r = m.kind;
		if (r == QMP_MSG_ERROR)
			status_set(st, ST_UNAVAILABLE, "QMP qmp_capabilities: %s", m.err_desc);
		qmp_msg_clear(&m);
		if (r == QMP_MSG_RETURN)
			break;
		if (r == QMP_MSG_ERROR)
			goto fail;
	}
	q->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (q->wake_fd < 0) {
		status_errno(st, ST_INTERNAL, errno, "eventfd");
		goto fail;
	}
	pthread_mutex_lock(&q->mu);
	q->fd = fd;
	q->alive = true;
	pthread_mutex_unlock(&q->mu);
	if ((r = pthread_create(&q->reader, NULL, qmp_reader, q)) != 0) {
		pthread_mutex_lock(&q->mu);
		q->alive = false;
		pthread_mutex_unlock(&q->mu);
		qmp_disconnect(q); /* closes fd and wake_fd; no reader to join */
		return status_errno(
		    st, ST_INTERNAL, r, "QMP %s: the reader thread: pthread_create", q->path);
	}
	q->reader_started = true;
	log_info("QMP %s: connected", q->path);
	return 0;
fail:
	close(fd);
	return status_wrap(st, "QMP %s", q->path);
}

/* Make sure a live connection exists; reconnect after QEMU went away. write_mu held. */
static int
qmp_ensure(struct qmp *q, struct status *st)
{
	bool alive;

	pthread_mutex_lock(&q->mu);
	alive = q->alive;
	pthread_mutex_unlock(&q->mu);
	if (alive)
		return 0;
	qmp_disconnect(q);
	return qmp_connect(q, st);
}

int
qmp_execute(struct qmp *q, const char *command, json_t *args, int timeout_ms, json_t **ret,
    struct status *st)
{
	struct qmp_pending p = {0};
	struct qmp_pending **pp;
	cleanup_json json_t *req = NULL;
	cleanup_free char *text = NULL;
	struct timespec ts;
	int64_t deadline;
	int r = 0;

	if (ret != NULL)
		*ret = NULL;
	deadline = time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
	req = json_object();
	json_object_set_new(req, "execute", json_string(command));
	if (args != NULL)
		json_object_set(req, "arguments", args);

	pthread_mutex_lock(&q->write_mu);
	if (qmp_ensure(q, st) < 0) {
		pthread_mutex_unlock(&q->write_mu);
		return status_wrap(st, "%s", command);
	}
	pthread_mutex_lock(&q->mu);
	snprintf(p.id, sizeof p.id, "vmshim-%llu", (unsigned long long)++q->next_id);
	p.next = q->pending;
	q->pending = &p;
	pthread_mutex_unlock(&q->mu);
	json_object_set_new(req, "id", json_string(p.id));
	text = json_dumps(req, JSON_COMPACT);
	if (text == NULL)
		fatalx("json_dumps failed");
	/* Bounded by the command's deadline: a VMM that stops reading must not pin a worker. */
	r = write_all_deadline(q->fd, text, strlen(text), deadline);
	if (r == 0)
		r = write_all_deadline(q->fd, "\n", 1, deadline);
	if (r == -ETIMEDOUT) {
		/* Part of the line may be out: the stream is out of step; reconnect next time. */
		pthread_mutex_lock(&q->mu);
		q->alive = false;
		pthread_mutex_unlock(&q->mu);
	}
	pthread_mutex_unlock(&q->write_mu);

	pthread_mutex_lock(&q->mu);
	if (r == -ETIMEDOUT && !p.done) {
		p.done = true;
		status_set(&p.st, ST_DEADLINE_EXCEEDED, "QEMU did not take the command in time");
	} else if (r < 0 && !p.done) {
		p.done = true;
		status_errno(&p.st, ST_UNAVAILABLE, r, "write");
	}
	while (!p.done) {
		ts.tv_sec = deadline / 1000;
		ts.tv_nsec = (deadline % 1000) * 1000000;
		if (pthread_cond_timedwait(&q->cond, &q->mu, &ts) == ETIMEDOUT && !p.done) {
			p.done = true;
			status_set(
			    &p.st, ST_DEADLINE_EXCEEDED, "no answer within %d ms", timeout_ms);
		}
	}
	for (pp = &q->pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == &p) {
			*pp = p.next;
			break;
		}
	pthread_mutex_unlock(&q->mu);

	if (p.ret == NULL) {
		*st = p.st;
		return status_wrap(st, "%s", command);
	}
	if (ret != NULL)
		*ret = p.ret;
	else
		json_decref(p.ret);
	return 0;
}

uint64_t
qmp_event_seq(struct qmp *q)
{
	uint64_t seq;

	pthread_mutex_lock(&q->mu);
	seq = q->event_seq;
	pthread_mutex_unlock(&q->mu);
	return seq;
}

int
qmp_wait_event(struct qmp *q, uint64_t after_seq, const char *event, const char *device,
    int64_t deadline_ms, struct status *st)
{
	struct qmp_event *e;
	struct timespec ts;
	uint64_t s, oldest;
	int r = -1;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		oldest = q->event_seq >= QMP_EVENT_RING ? q->event_seq - QMP_EVENT_RING + 1 : 1;
		for (s = after_seq + 1 > oldest ? after_seq + 1 : oldest; s <= q->event_seq; s++) {
			e = &q->ring[s % QMP_EVENT_RING];
			if (strcmp(e->name, event) == 0 &&
			    (device == NULL || strcmp(e->device, device) == 0)) {
				r = 0;
				goto out;
			}
		}
		after_seq = q->event_seq;
		if (!q->alive) {
			status_set(st, ST_UNAVAILABLE, "QMP %s: QEMU went away waiting for %s",
			    q->path, event);
			goto out;
		}
		ts.tv_sec = deadline_ms / 1000;
		ts.tv_nsec = (deadline_ms % 1000) * 1000000;
		if (pthread_cond_timedwait(&q->cond, &q->mu, &ts) == ETIMEDOUT &&
		    time_mono_ms() >= deadline_ms) {
			status_set(st, ST_DEADLINE_EXCEEDED, "no %s%s%s event in time", event,
			    device ? " for " : "", device ? device : "");
			/* one last look at what arrived with the timeout */
			for (s = after_seq + 1; s <= q->event_seq; s++) {
				e = &q->ring[s % QMP_EVENT_RING];
				if (strcmp(e->name, event) == 0 &&
				    (device == NULL || strcmp(e->device, device) == 0)) {
					r = 0;
					break;
				}
			}
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&q->mu);
	return r;
}

void
qmp_free(struct qmp *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->write_mu);
	qmp_disconnect(q);
	pthread_mutex_unlock(&q->write_mu);
	pthread_mutex_lock(&q->mu);
	if (q->pending != NULL)
		fatalx("qmp_free with commands in progress");
	pthread_mutex_unlock(&q->mu);
	pthread_mutex_destroy(&q->mu);
	pthread_mutex_destroy(&q->write_mu);
	pthread_cond_destroy(&q->cond);
	free(q->path);
	free(q);
}
