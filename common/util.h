/*
 * util.h: small helpers every vmshim module uses.
 *
 * Allocation that never returns NULL (out of memory is fatal, as in tmux and redis),
 * fatal()/fatalx() for programming errors, __attribute__((cleanup)) helpers for locals
 * (crun's utils.h), descriptor flags, full reads/writes, deadlines on the monotonic clock,
 * and RFC 3339 timestamps with nanoseconds as containerd prints them.
 * Everything here is thread-safe and owns nothing.
 */
#ifndef VMSHIM_UTIL_H
#define VMSHIM_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Programming errors and out-of-memory: print file, line and message, then abort. */
#define fatal(...)  util_fatal(__FILE__, __LINE__, 1, __VA_ARGS__)
#define fatalx(...) util_fatal(__FILE__, __LINE__, 0, __VA_ARGS__)
void util_fatal(const char *file, int line, int with_errno, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
int xasprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Cleanup attributes for locals: the variable is released when it leaves scope. */
void util_freep(void *p);
void util_closep(int *fd);
#define cleanup_free  __attribute__((cleanup(util_freep)))
#define cleanup_close __attribute__((cleanup(util_closep)))

/* Hand a pointer or descriptor out of a cleanup-guarded local: `*out = steal_ptr(&p);` */
static inline void *
steal_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}
static inline int
steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

/* Descriptor flags; return 0 or -errno. */
int fd_set_nonblock(int fd, bool nonblock);
int fd_set_cloexec(int fd);

/*
 * Write all of buf (retrying EINTR and short writes; a non-blocking fd polls). 0 or -errno.
 * It waits as long as the peer takes: use it only where blocking forever is intended (a
 * pipe or socket this process controls both ends of, tests, tools); a peer that may stop
 * reading (a VMM, the guest) needs write_all_deadline.
 */
int write_all(int fd, const void *buf, size_t len);
/* Read exactly len bytes. 0, -errno, or -EPIPE on EOF before len bytes. Waits forever too. */
int read_full(int fd, void *buf, size_t len);

/*
 * write_all / read_full bounded by the monotonic deadline_ms (as time_mono_ms; < 0 means no
 * deadline). They never block past the deadline whether or not fd is O_NONBLOCK: sockets are
 * written with MSG_DONTWAIT | MSG_NOSIGNAL (a vanished peer is -EPIPE, never SIGPIPE), other
 * blocking descriptors at most PIPE_BUF bytes per write after poll says there is room.
 * Returns 0, -ETIMEDOUT (some bytes may have gone: the stream is then out of step and the
 * caller should drop it), or -errno; read_full_deadline -EPIPE on EOF before len bytes.
 */
int write_all_deadline(int fd, const void *buf, size_t len, int64_t deadline_ms);
int read_full_deadline(int fd, void *buf, size_t len, int64_t deadline_ms);
/*
 * write_all_deadline that also gives up with -ECANCELED as soon as wake_fd (an eventfd or
 * pipe, < 0 for none) becomes readable; wake_fd is only polled, never read. *written gets the
 * number of bytes that went out in every case, so the caller can tell a clean give-up (0)
 * from one part-way through a message.
 */
int write_all_wake(
    int fd, const void *buf, size_t len, int64_t deadline_ms, int wake_fd, size_t *written);

/* Monotonic milliseconds, for deadlines. */
int64_t time_mono_ms(void);
/* clock's now plus ms (>= 0), normalized: the deadline of a pthread_*timed* wait on clock. */
void time_after_ms(clockid_t clock, int64_t ms, struct timespec *ts);
/*
 * Reap child pid, giving it grace_ms to exit (the caller has asked it to: SIGTERM, EOF);
 * past that it is SIGKILLed and reaped. True when it exited within the grace period.
 */
bool util_reap_child(pid_t pid, int grace_ms);
/*
 * Wait until fd is ready for `events` (POLLIN/POLLOUT) or the monotonic deadline passes.
 * Returns 1 ready, 0 timed out, -errno on error. deadline_ms < 0 waits forever.
 */
int fd_wait(int fd, short events, int64_t deadline_ms);

/* RFC 3339 with nanoseconds in UTC, e.g. "2026-11-22T05:50:44.123456789Z". */
#define TIME_RFC3339_LEN 40
void time_rfc3339(const struct timespec *ts, char out[TIME_RFC3339_LEN]);
void time_rfc3339_now(char out[TIME_RFC3339_LEN]);

/* Parse a decimal u32/u64 from the whole string (no sign, no junk). 0 or -EINVAL/-ERANGE. */
int parse_u32(const char *s, uint32_t *out);
int parse_u64(const char *s, uint64_t *out);

/* Create a directory and its parents with mode (existing ones are left as they are). */
int mkdir_p(const char *path, mode_t mode);
/* Does path have a ".." component (one that can climb out of where it is put)? */
bool path_has_dotdot(const char *path);

/*
 * Open a path a peer named so that the open cannot block (a FIFO without a writer, a tty):
 * open(flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY), fstat, and require the file type `want`
 * (S_IFREG, S_IFIFO, ...); flags must not hold O_CREAT. Returns the fd, still O_NONBLOCK, with *sb
 * filled (sb may be NULL), or -errno; -EINVAL when the type differs.
 */
int util_open_nonblock(const char *path, int flags, mode_t want, struct stat *sb);
/*
 * Read the whole regular file at path, at most max bytes, opened as util_open_nonblock does.
 * *out gets a NUL-terminated copy (caller frees), *len (may be NULL) its length. 0, or
 * -errno: -EINVAL not a regular file, -EFBIG more than max bytes.
 */
int util_read_regular_file(const char *path, size_t max, char **out, size_t *len);
/* The message for a util_read_regular_file / util_open_nonblock error. */
const char *util_file_strerror(int err, mode_t want);

/* An executable dir/name? Its path goes to *out (caller frees) and true is returned. */
bool util_find_in(const char *dir, const char *name, char **out);
/*
 * The executable name: itself when it holds a '/', else the first match on PATH (a default
 * PATH when it is unset or empty), then, with system_dirs, in /usr/sbin, /usr/bin, /sbin and
 * /bin. NULL when absent; the caller frees the result.
 */
char *util_which(const char *name, bool system_dirs);

#endif
