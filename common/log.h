/*
 * log.h: the one log module of vmshim and vmshim-agent.
 *
 * Each record is one JSON line, as containerd's shims log:
 *   {"time":"2026-11-22T05:50:44.123456789Z","level":"info","msg":"...","func":"...",
 *    "id":"c1","exec_id":"e1"}
 * written with a single write(2) so lines from several threads never interleave. The level
 * is checked before anything is formatted. log_route_libevent() sends libevent's own messages
 * here. Any thread may log; the sink and level are set once at start-up by main().
 */
#ifndef VMSHIM_LOG_H
#define VMSHIM_LOG_H

#include "status.h"

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

/* Open path for appending (NULL or "-" means stderr). 0 or -1 with *st. */
int log_open(const char *path, struct status *st);
void log_close(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error", "warn" (or "warning"), "info", "debug". 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);
void log_route_libevent(void);

/*
 * A string a peer supplied (an id, a path, a serial) is printed cut to this many bytes, with
 * "%.*s", LOG_STR_MAX, s; the id and exec_id fields are cut to the same length.
 */
#define LOG_STR_MAX 255

void log_emit(enum log_level level, const char *func, const char *id, const char *exec_id,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define log_at(level, id, exec_id, ...)                                                            \
	do {                                                                                       \
		if ((level) <= log_get_level())                                                    \
			log_emit((level), __func__, (id), (exec_id), __VA_ARGS__);                 \
	} while (0)

#define log_error(...) log_at(LOG_ERROR, NULL, NULL, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, NULL, NULL, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, NULL, NULL, __VA_ARGS__)
/* With the container and exec id as fields. */
#define log_error_id(id, exec, ...) log_at(LOG_ERROR, (id), (exec), __VA_ARGS__)
#define log_warn_id(id, exec, ...)  log_at(LOG_WARN, (id), (exec), __VA_ARGS__)
#define log_info_id(id, exec, ...)  log_at(LOG_INFO, (id), (exec), __VA_ARGS__)
#define log_debug_id(id, exec, ...) log_at(LOG_DEBUG, (id), (exec), __VA_ARGS__)

#endif
