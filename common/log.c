/*
 * log.c: the one log module; each record is one JSON line written with one write(2).
 *
 * State is two atomics: the sink descriptor (stderr until log_open) and the level. Any
 * thread may call log_emit(); it takes no lock: it loads the level and the fd, formats the
 * whole record into a LOG_LINE_MAX stack buffer and hands it to a single write(2). With
 * O_APPEND (files) or at most PIPE_BUF bytes (pipes, and LOG_LINE_MAX is PIPE_BUF on Linux)
 * the kernel never interleaves two such writes, so lines from several threads stay whole.
 * A message too long for the buffer is cut at a character boundary and ends in "...", and
 * the line is still valid JSON.
 *
 * The sink is swapped with an atomic exchange and the previous descriptor is closed at once.
 * That is only safe while no other thread logs (a thread that had already loaded the old fd
 * could write to a closed or reused descriptor), so log_open() and log_close() are for
 * start-up and shutdown in main(), as log.h says. The sink fd is owned by this module.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX  4096	  /* one record, newline included */
#define LOG_TAIL_MAX  1024	  /* "func", "id" and "exec_id" fields together */
#define LOG_FIELD_MAX LOG_STR_MAX /* one escaped tail field value */
#define LOG_ELLIPSIS  "..."

static atomic_int log_fd = STDERR_FILENO;
static atomic_int log_level = LOG_INFO;

static const char *const log_level_names[] = {
    [LOG_ERROR] = "error",
    [LOG_WARN] = "warning",
    [LOG_INFO] = "info",
    [LOG_DEBUG] = "debug",
};

/* Install fd as the sink and close the previous one unless it is stderr. */
static void
log_swap_fd(int fd)
{
	int old = atomic_exchange(&log_fd, fd);

	if (old != STDERR_FILENO && old != fd)
		close(old);
}

/* Open path for appending as the sink; NULL or "-" selects stderr. Start-up only. */
int
log_open(const char *path, struct status *st)
{
	int fd;

	if (path == NULL || strcmp(path, "-") == 0) {
		log_swap_fd(STDERR_FILENO);
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return status_errno(st, ST_UNAVAILABLE, errno, "log %s", path);
	log_swap_fd(fd);
	return 0;
}

/* Close the log file, if any, and log to stderr again. Shutdown only. */
void
log_close(void)
{
	log_swap_fd(STDERR_FILENO);
}

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

/* Map a level name from the config or the command line to a level. */
int
log_level_parse(const char *name, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} table[] = {
	    {"error", LOG_ERROR},
	    {"warn", LOG_WARN},
	    {"warning", LOG_WARN},
	    {"info", LOG_INFO},
	    {"debug", LOG_DEBUG},
	};
	size_t i;

	if (name == NULL)
		return -1;
	for (i = 0; i < ARRAY_SIZE(table); i++) {
		if (strcmp(name, table[i].name) == 0) {
			*out = table[i].level;
			return 0;
		}
	}
	return -1;
}

/* Bytes in the UTF-8 sequence a lead byte starts (1 for ASCII and stray bytes). */
static size_t
log_utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c <= 0xf7)
		return 4;
	if (c >= 0xe0)
		return c <= 0xef ? 3 : 1;
	if (c >= 0xc0)
		return 2;
	return 1;
}

/*
 * Append s as the inside of a JSON string to out[*len..cap), escaping quotes, backslashes
 * and control characters and keeping other bytes (UTF-8) as they are. Never splits an escape
 * or a UTF-8 sequence; returns false if all of s did not fit.
 */
static bool
log_escape(char *out, size_t *len, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	char esc[7];
	size_t n, k;

	while (*p != '\0') {
		n = 0;
		switch (*p) {
		case '"':
			memcpy(esc, "\\\"", n = 2);
			break;
		case '\\':
			memcpy(esc, "\\\\", n = 2);
			break;
		case '\n':
			memcpy(esc, "\\n", n = 2);
			break;
		case '\r':
			memcpy(esc, "\\r", n = 2);
			break;
		case '\t':
			memcpy(esc, "\\t", n = 2);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 0xf];
				n = 6;
			}
			break;
		}
		if (n > 0) {
			if (cap - *len < n)
				return false;
			memcpy(out + *len, esc, n);
			*len += n;
			p++;
			continue;
		}
		/* A whole UTF-8 sequence, or a lone byte if the sequence is cut short. */
		n = log_utf8_len(*p);
		for (k = 1; k < n; k++)
			if ((p[k] & 0xc0) != 0x80)
				break;
		n = k;
		if (cap - *len < n)
			return false;
		memcpy(out + *len, p, n);
		*len += n;
		p += n;
	}
	return true;
}

/* Append a literal (which the caller has already made room for). */
static void
log_append(char *out, size_t *len, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n > cap - *len)
		n = cap - *len;
	memcpy(out + *len, s, n);
	*len += n;
}

/* Append ,"key":"value" to the tail, the value escaped and cut to LOG_FIELD_MAX bytes. */
static void
log_field(char *out, size_t *len, size_t cap, const char *key, const char *value)
{
	size_t vcap;

	log_append(out, len, cap, ",\"");
	log_append(out, len, cap, key);
	log_append(out, len, cap, "\":\"");
	vcap = *len + LOG_FIELD_MAX;
	if (vcap > cap - 1)
		vcap = cap - 1;
	log_escape(out, len, vcap, value);
	log_append(out, len, cap, "\"");
}

/* Write the record with one write(2); errors other than EINTR are dropped on purpose. */
static void
log_write(const char *buf, size_t len)
{
	int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
	ssize_t n;

	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
}

static void log_vemit(enum log_level level, const char *func, const char *id, const char *exec_id,
    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* Format one record as a JSON line and write it; filtered by level like the macros. */
static void
log_vemit(enum log_level level, const char *func, const char *id, const char *exec_id,
    const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	char tail[LOG_TAIL_MAX];
	char msg[LOG_LINE_MAX];
	char now[TIME_RFC3339_LEN];
	size_t len = 0, tlen = 0, cap;
	int n;

	if ((int)level < 0 || (size_t)level >= ARRAY_SIZE(log_level_names))
		level = LOG_ERROR;
	if (level > log_get_level())
		return;

	n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n < 0)
		snprintf(msg, sizeof msg, "(bad log format \"%s\")", fmt);

	/* The fields after "msg", closed by "}\n"; bounded so the message always has room. */
	log_field(tail, &tlen, sizeof tail - 3, "func", func != NULL ? func : "");
	if (id != NULL && *id != '\0')
		log_field(tail, &tlen, sizeof tail - 3, "id", id);
	if (exec_id != NULL && *exec_id != '\0')
		log_field(tail, &tlen, sizeof tail - 3, "exec_id", exec_id);
	log_append(tail, &tlen, sizeof tail, "}\n");

	time_rfc3339_now(now);
	log_append(line, &len, sizeof line, "{\"time\":\"");
	log_append(line, &len, sizeof line, now);
	log_append(line, &len, sizeof line, "\",\"level\":\"");
	log_append(line, &len, sizeof line, log_level_names[level]);
	log_append(line, &len, sizeof line, "\",\"msg\":\"");

	/* Room for the message, leaving its closing quote, the tail and a possible "...". */
	cap = sizeof line - tlen - 1 - strlen(LOG_ELLIPSIS);
	if (!log_escape(line, &len, cap, msg) || (n >= 0 && (size_t)n >= sizeof msg))
		log_append(line, &len, sizeof line, LOG_ELLIPSIS);
	log_append(line, &len, sizeof line, "\"");
	memcpy(line + len, tail, tlen);
	len += tlen;
	log_write(line, len);
}

/* Log one record; the macros in log.h check the level first so arguments are not evaluated. */
void
log_emit(enum log_level level, const char *func, const char *id, const char *exec_id,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(level, func, id, exec_id, fmt, ap);
	va_end(ap);
}

/* libevent's log callback: its severities become ours, with "libevent" as the function. */
static void
log_libevent_cb(int severity, const char *msg)
{
	enum log_level level;

	switch (severity) {
	case EVENT_LOG_DEBUG:
		level = LOG_DEBUG;
		break;
	case EVENT_LOG_MSG:
		level = LOG_INFO;
		break;
	case EVENT_LOG_WARN:
		level = LOG_WARN;
		break;
	default:
		level = LOG_ERROR;
		break;
	}
	if (level <= log_get_level())
		log_emit(level, "libevent", NULL, NULL, "%s", msg);
}

/* Route libevent's own warnings and errors into this log. */
void
log_route_libevent(void)
{
	event_set_log_callback(log_libevent_cb);
}
