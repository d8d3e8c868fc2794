/*
 * util.c: allocation, fatal errors, descriptor helpers, deadlines and timestamps.
 *
 * Owns nothing and keeps no state; every function is safe from any thread. Out of memory is
 * fatal (the shim cannot do anything useful without memory and must not limp on).
 *
 * Full writes and reads come in two kinds: write_all / read_full wait as long as the peer
 * takes (for descriptors whose other end we trust), and the _deadline / _wake variants, which
 * never block past a monotonic deadline nor, with a wake descriptor, past its signal, whatever
 * the descriptor's O_NONBLOCK flag (for peers that may stop reading: the guest, the VMM).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

void
util_fatal(const char *file, int line, int with_errno, const char *fmt, ...)
{
	int saved = errno;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (with_errno)
		fprintf(stderr, "fatal: %s:%d: %s: %s\n", file, line, msg, strerror(saved));
	else
		fprintf(stderr, "fatal: %s:%d: %s\n", file, line, msg);
	abort();
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		fatalx("out of memory allocating %zu bytes", size);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		fatalx("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

void *
xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
		fatalx("out of memory reallocating to %zu bytes", size);
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatalx("out of memory duplicating a string");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		fatalx("out of memory duplicating a string");
	return p;
}

int
xasprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(out, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("out of memory formatting a string");
	return n;
}

void
util_freep(void *p)
{
	free(*(void **)p);
}

void
util_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int
fd_set_nonblock(int fd, bool nonblock)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -errno;
	flags = nonblock ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
	if (fcntl(fd, F_SETFL, flags) < 0)
		return -errno;
	return 0;
}

int
fd_set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0)
		return -errno;
	if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r = fd_wait(fd, POLLOUT, -1);
				if (r < 0)
					return r;
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		n = read(fd, p, len);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r = fd_wait(fd, POLLIN, -1);
				if (r < 0)
					return r;
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Poll fd for events and wake_fd (if >= 0) for input until deadline_ms (< 0: forever).
 * Returns 1 when fd is ready (or in error: the caller's next call reports it), 0 on timeout,
 * -ECANCELED when wake_fd is readable (checked first), -errno if poll fails.
 */
static int
util_wait_wake(int fd, short events, int wake_fd, int64_t deadline_ms)
{
	struct pollfd pfd[2] = {{.fd = fd, .events = events}, {.fd = wake_fd, .events = POLLIN}};
	nfds_t nfds = wake_fd >= 0 ? 2 : 1;
	int64_t left;
	int r;

	for (;;) {
		if (deadline_ms < 0) {
			left = -1;
		} else {
			left = deadline_ms - time_mono_ms();
			if (left < 0)
				left = 0;
			if (left > INT_MAX)
				left = INT_MAX;
		}
		r = poll(pfd, nfds, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		if (nfds == 2 && pfd[1].revents != 0)
			return -ECANCELED;
		return 1;
	}
}

/*
 * The one bounded writer. A socket is sent to with MSG_DONTWAIT whatever its O_NONBLOCK; any
 * other descriptor that blocks gets a poll first and at most PIPE_BUF bytes per write, which
 * a pipe with room (POLLOUT) takes without blocking; a non-blocking one is written freely.
 */
int
write_all_wake(
    int fd, const void *buf, size_t len, int64_t deadline_ms, int wake_fd, size_t *written)
{
	const char *p = buf;
	bool sock = true, blocking = false;
	size_t done = 0, chunk;
	ssize_t n;
	int r, fl;

	while (done < len) {
		if (sock) {
			n = send(fd, p + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK) {
				sock = false;
				if ((fl = fcntl(fd, F_GETFL)) < 0) {
					r = -errno;
					goto out;
				}
				blocking = (fl & O_NONBLOCK) == 0;
				continue;
			}
		} else {
			chunk = len - done;
			if (blocking) {
				r = util_wait_wake(fd, POLLOUT, wake_fd, deadline_ms);
				if (r <= 0) {
					r = r == 0 ? -ETIMEDOUT : r;
					goto out;
				}
				if (chunk > PIPE_BUF)
					chunk = PIPE_BUF;
			}
			n = write(fd, p + done, chunk);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				r = -errno;
				goto out;
			}
			r = util_wait_wake(fd, POLLOUT, wake_fd, deadline_ms);
			if (r <= 0) {
				r = r == 0 ? -ETIMEDOUT : r;
				goto out;
			}
			continue;
		}
		done += (size_t)n;
	}
	r = 0;
out:
	*written = done;
	return r;
}

int
write_all_deadline(int fd, const void *buf, size_t len, int64_t deadline_ms)
{
	size_t written;

	return write_all_wake(fd, buf, len, deadline_ms, -1, &written);
}

/* Poll before every read, so a blocking fd never blocks past the deadline either. */
int
read_full_deadline(int fd, void *buf, size_t len, int64_t deadline_ms)
{
	char *p = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		r = fd_wait(fd, POLLIN, deadline_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return r;
		n = read(fd, p, len);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int64_t
time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
time_after_ms(clockid_t clock, int64_t ms, struct timespec *ts)
{
	clock_gettime(clock, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

bool
util_reap_child(pid_t pid, int grace_ms)
{
	int64_t deadline = time_mono_ms() + grace_ms;
	int status, nap = 1;
	pid_t r;

	while ((r = waitpid(pid, &status, WNOHANG)) == 0 || (r < 0 && errno == EINTR)) {
		if (time_mono_ms() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return false;
		}
		poll(NULL, 0, nap);
		if (nap < 50)
			nap *= 2;
	}
	return true;
}

int
fd_wait(int fd, short events, int64_t deadline_ms)
{
	return util_wait_wake(fd, events, -1, deadline_ms);
}

void
time_rfc3339(const struct timespec *ts, char out[TIME_RFC3339_LEN])
{
	struct tm tm;
	char base[32];

	gmtime_r(&ts->tv_sec, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, TIME_RFC3339_LEN, "%s.%09ldZ", base, (long)ts->tv_nsec);
}

void
time_rfc3339_now(char out[TIME_RFC3339_LEN])
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	time_rfc3339(&ts, out);
}

int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned d;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int
parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;
	int r = parse_u64(s, &v);

	if (r < 0)
		return r;
	if (v > UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

int
mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	char *p;

	if (len == 0 || len >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

bool
path_has_dotdot(const char *path)
{
	const char *p = path;

	for (;;) {
		size_t len = strcspn(p, "/");

		if (len == 2 && p[0] == '.' && p[1] == '.')
			return true;
		if (p[len] == '\0')
			return false;
		p += len + 1;
	}
}

int
util_open_nonblock(const char *path, int flags, mode_t want, struct stat *sb)
{
	struct stat tmp;
	int fd, err;

	if (sb == NULL)
		sb = &tmp;
	fd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, sb) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	if ((sb->st_mode & S_IFMT) != want) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int
util_read_regular_file(const char *path, size_t max, char **out, size_t *lenp)
{
	cleanup_close int fd = -1;
	cleanup_free char *buf = NULL;
	struct stat sb;
	size_t len = 0, cap;
	ssize_t n;

	fd = util_open_nonblock(path, O_RDONLY, S_IFREG, &sb);
	if (fd < 0)
		return fd;
	if (sb.st_size < 0 || (uint64_t)sb.st_size > max)
		return -EFBIG;
	/* The size may change under us: read to EOF, but never past max. */
	cap = (size_t)sb.st_size + 1;
	buf = xmalloc(cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap > max)
				return -EFBIG;
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max)
		return -EFBIG;
	buf[len] = '\0';
	*out = steal_ptr(&buf);
	if (lenp != NULL)
		*lenp = len;
	return 0;
}

const char *
util_file_strerror(int err, mode_t want)
{
	if (err == -EINVAL)
		return want == S_IFIFO ? "not a FIFO" : "not a regular file";
	if (err == -EFBIG)
		return "file too large";
	return strerror(-err);
}

bool
util_find_in(const char *dir, const char *name, char **out)
{
	char *p = NULL;

	xasprintf(&p, "%s/%s", dir, name);
	if (access(p, X_OK) == 0) {
		*out = p;
		return true;
	}
	free(p);
	return false;
}

char *
util_which(const char *name, bool system_dirs)
{
	static const char *const extra[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};
	const char *path = getenv("PATH");
	cleanup_free char *copy = NULL;
	char *dir, *save = NULL, *out = NULL;

	if (strchr(name, '/') != NULL)
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	copy = xstrdup(path != NULL && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(copy, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save))
		if (*dir == '/' && util_find_in(dir, name, &out))
			return out;
	for (size_t i = 0; system_dirs && i < ARRAY_SIZE(extra); i++)
		if (util_find_in(extra[i], name, &out))
			return out;
	return NULL;
}
