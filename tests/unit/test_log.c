/*
 * test_log.c: the JSON-lines log (common/log.c).
 *
 * Every case logs into a fresh file in a private mkdtemp directory, reads it back and parses
 * each line with jansson: the fields, level filtering (arguments not even evaluated when
 * filtered), escaping that round-trips, truncation of long messages to one valid line, whole
 * lines from four threads at once, level names, libevent's messages routed in, and the sink
 * being put back on stderr. The module's state is global, so cases run one after another
 * and each leaves the level at info and the sink on stderr.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/util.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"
#include "util.h"

static char tmpdir[] = "/tmp/test_log.XXXXXX";
static int file_seq;

/* Point the log at a new file in the private directory; its path goes to path. */
static void
log_to_new_file(char path[PATH_MAX])
{
	struct status st;

	snprintf(path, PATH_MAX, "%s/log.%d", tmpdir, file_seq++);
	status_clear(&st);
	CU_ASSERT_EQUAL_FATAL(log_open(path, &st), 0);
}

/* The whole file (NUL-terminated, caller frees) and its size. */
static char *
slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (f == NULL)
		fatal("fopen %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		fatal("fread %s", path);
	buf[n] = '\0';
	fclose(f);
	*size = (size_t)n;
	return buf;
}

/* Split the file into lines; each must end in '\n'. Returns the count, lines in *out. */
static size_t
read_lines(const char *path, char ***out)
{
	size_t size, n = 0, cap = 16;
	char *buf = slurp(path, &size);
	char **lines = xcalloc(cap, sizeof *lines);
	char *p = buf, *nl;

	CU_ASSERT(size == 0 || buf[size - 1] == '\n');
	while ((nl = strchr(p, '\n')) != NULL) {
		if (n == cap)
			lines = xrealloc(lines, (cap *= 2) * sizeof *lines);
		lines[n++] = xstrndup(p, (size_t)(nl - p));
		p = nl + 1;
	}
	free(buf);
	*out = lines;
	return n;
}

static void
free_lines(char **lines, size_t n)
{
	while (n > 0)
		free(lines[--n]);
	free(lines);
}

/* Parse one line as a JSON object, or NULL (after a failed assertion). */
static json_t *
parse_line(const char *line)
{
	json_error_t err;
	json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &err);

	CU_ASSERT_PTR_NOT_NULL(j);
	if (j == NULL) {
		fprintf(stderr, "bad JSON (%s): %.200s\n", err.text, line);
		return NULL;
	}
	CU_ASSERT_TRUE(json_is_object(j));
	return j;
}

/* A string field, or "<missing>" so that a failed parse fails assertions, not the program. */
static const char *
field(json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));

	return v != NULL ? v : "<missing>";
}

/* "2026-11-22T05:50:44.123456789Z" */
static bool
is_rfc3339_nano(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
	size_t i;

	if (s == NULL || strlen(s) != sizeof shape - 1)
		return false;
	for (i = 0; i < sizeof shape - 1; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	}
	return true;
}

static void
test_fields(void)
{
	char path[PATH_MAX];
	char **lines;
	json_t *j;
	size_t n;

	log_set_level(LOG_INFO);
	log_to_new_file(path);
	log_info("hello %d", 42);
	log_warn_id("c1", "e1", "with %s", "ids");
	log_error_id("c2", "", "empty exec id");
	log_info_id(NULL, "e3", "no id");
	log_close();

	n = read_lines(path, &lines);
	CU_ASSERT_EQUAL_FATAL(n, 4);

	j = parse_line(lines[0]);
	CU_ASSERT_TRUE(is_rfc3339_nano(field(j, "time")));
	CU_ASSERT_STRING_EQUAL(field(j, "level"), "info");
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), "hello 42");
	CU_ASSERT_STRING_EQUAL(field(j, "func"), "test_fields");
	CU_ASSERT_PTR_NULL(json_object_get(j, "id"));
	CU_ASSERT_PTR_NULL(json_object_get(j, "exec_id"));
	CU_ASSERT_EQUAL(json_object_size(j), 4);
	json_decref(j);

	j = parse_line(lines[1]);
	CU_ASSERT_STRING_EQUAL(field(j, "level"), "warning");
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), "with ids");
	CU_ASSERT_STRING_EQUAL(field(j, "id"), "c1");
	CU_ASSERT_STRING_EQUAL(field(j, "exec_id"), "e1");
	CU_ASSERT_EQUAL(json_object_size(j), 6);
	json_decref(j);

	j = parse_line(lines[2]);
	CU_ASSERT_STRING_EQUAL(field(j, "level"), "error");
	CU_ASSERT_STRING_EQUAL(field(j, "id"), "c2");
	CU_ASSERT_PTR_NULL(json_object_get(j, "exec_id"));
	json_decref(j);

	j = parse_line(lines[3]);
	CU_ASSERT_PTR_NULL(json_object_get(j, "id"));
	CU_ASSERT_STRING_EQUAL(field(j, "exec_id"), "e3");
	json_decref(j);
	free_lines(lines, n);
}

static int side_effects;

static int
side_effect(void)
{
	return ++side_effects;
}

static void
test_level_filter(void)
{
	char path[PATH_MAX];
	char **lines;
	json_t *j;
	size_t n;

	log_to_new_file(path);
	log_set_level(LOG_INFO);
	CU_ASSERT_EQUAL(log_get_level(), LOG_INFO);
	side_effects = 0;
	log_debug("filtered %d", side_effect());
	log_debug_id("c1", "e1", "filtered %d", side_effect());
	CU_ASSERT_EQUAL(side_effects, 0); /* arguments not evaluated */
	/* log_emit called directly filters too (the arguments are evaluated, of course). */
	log_emit(LOG_DEBUG, __func__, NULL, NULL, "direct debug");
	log_info("kept %d", side_effect());
	CU_ASSERT_EQUAL(side_effects, 1);

	log_set_level(LOG_ERROR);
	log_warn("filtered warn");
	log_info("filtered info");
	log_error("kept error");

	log_set_level(LOG_DEBUG);
	log_debug("kept debug %d", side_effect());
	CU_ASSERT_EQUAL(side_effects, 2);
	log_set_level(LOG_INFO);
	log_close();

	n = read_lines(path, &lines);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	j = parse_line(lines[0]);
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), "kept 1");
	json_decref(j);
	j = parse_line(lines[1]);
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), "kept error");
	json_decref(j);
	j = parse_line(lines[2]);
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), "kept debug 2");
	CU_ASSERT_STRING_EQUAL(field(j, "level"), "debug");
	json_decref(j);
	free_lines(lines, n);
}

static void
test_escaping(void)
{
	static const char msg[] = "quote \" backslash \\ slash / nl \n cr \r tab \t bell \a "
				  "esc \x1b unit \x1f del \x7f utf8 h\xc3\xa9llo \xe2\x98\x83 "
				  "\xf0\x9d\x84\x9e end";
	static const char id[] = "id\"with\\odd\nchars";
	char path[PATH_MAX];
	char **lines;
	json_t *j;
	size_t n;

	log_to_new_file(path);
	log_info_id(id, "e\x01", "%s", msg);
	log_close();

	n = read_lines(path, &lines);
	CU_ASSERT_EQUAL_FATAL(n, 1); /* the newline in msg was escaped, not written */
	CU_ASSERT_PTR_NULL(strchr(lines[0], '\x1b'));
	CU_ASSERT_PTR_NOT_NULL(strstr(lines[0], "\\u001b"));
	j = parse_line(lines[0]);
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), msg);
	CU_ASSERT_STRING_EQUAL(field(j, "id"), id);
	CU_ASSERT_STRING_EQUAL(field(j, "exec_id"), "e\x01");
	json_decref(j);
	free_lines(lines, n);
}

/* A message longer than a record gives one valid, shortened line ending in "...". */
static void
check_long(const char *msg)
{
	char path[PATH_MAX];
	char **lines;
	const char *got;
	size_t n, len;
	json_t *j;

	log_to_new_file(path);
	log_info_id("c1", "e1", "%s", msg);
	log_info("after");
	log_close();

	n = read_lines(path, &lines);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT(strlen(lines[0]) + 1 <= 4096);
	CU_ASSERT(strlen(lines[0]) + 1 >= 4096 - 8); /* the room was used, not wasted */
	j = parse_line(lines[0]);
	got = field(j, "msg");
	len = strlen(got);
	CU_ASSERT(len > 1000);
	CU_ASSERT(len >= 3 && strcmp(got + len - 3, "...") == 0);
	CU_ASSERT(strncmp(got, msg, len - 3) == 0); /* a clean prefix */
	CU_ASSERT_STRING_EQUAL(field(j, "func"), "check_long");
	CU_ASSERT_STRING_EQUAL(field(j, "id"), "c1");
	CU_ASSERT_STRING_EQUAL(field(j, "exec_id"), "e1");
	json_decref(j);
	j = parse_line(lines[1]);
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), "after");
	json_decref(j);
	free_lines(lines, n);
}

static void
test_long_message(void)
{
	static const char pieces[][8] = {
	    "a", "\"", "\x01", "\xc3\xa9", "\xe2\x98\x83", "\xf0\x9d\x84\x9e", "\\", "bc"};
	char *msg = xmalloc(10001);
	size_t len = 0, k, i;

	memset(msg, 'a', 10000);
	msg[10000] = '\0';
	check_long(msg);

	/*
	 * Escapes and multi-byte characters, shifted by 0..23 bytes so that the cut falls at
	 * every offset of the 22-byte escaped pattern: never inside an escape or a character.
	 */
	for (k = 0; k < 24; k++) {
		memset(msg, 'x', k);
		len = k;
		for (i = 0; len + 4 < 10000; i++) {
			size_t pl = strlen(pieces[i % ARRAY_SIZE(pieces)]);

			memcpy(msg + len, pieces[i % ARRAY_SIZE(pieces)], pl);
			len += pl;
		}
		msg[len] = '\0';
		check_long(msg);
	}
	free(msg);
}

#define LOG_THREADS 4
#define LOG_LINES   1000

static void *
log_thread(void *arg)
{
	int t = (int)(intptr_t)arg;
	char pad[200];
	int i;

	for (i = 0; i < LOG_LINES; i++) {
		/* Varying lengths, so interleaved writes could not line up by chance. */
		memset(pad, 'a' + t, sizeof pad);
		pad[(i * 7 + t * 13) % sizeof pad] = '\0';
		log_info_id("c1", "e1", "thread %d line %d %s", t, i, pad);
	}
	return NULL;
}

static void
test_threads(void)
{
	static unsigned char seen[LOG_THREADS][LOG_LINES];
	pthread_t th[LOG_THREADS];
	char path[PATH_MAX];
	char **lines;
	int bad = 0, dup = 0, missing = 0, t, i;
	size_t n, k;

	memset(seen, 0, sizeof seen);
	log_to_new_file(path);
	for (t = 0; t < LOG_THREADS; t++)
		CU_ASSERT_EQUAL_FATAL(
		    pthread_create(&th[t], NULL, log_thread, (void *)(intptr_t)t), 0);
	for (t = 0; t < LOG_THREADS; t++)
		pthread_join(th[t], NULL);
	log_close();

	n = read_lines(path, &lines);
	CU_ASSERT_EQUAL(n, LOG_THREADS * LOG_LINES);
	for (k = 0; k < n; k++) {
		json_t *j = json_loads(lines[k], 0, NULL);
		const char *msg = field(j, "msg");
		char pad[200];

		if (sscanf(msg, "thread %d line %d", &t, &i) != 2 || t < 0 || t >= LOG_THREADS ||
		    i < 0 || i >= LOG_LINES) {
			bad++;
		} else {
			memset(pad, 'a' + t, sizeof pad);
			pad[(i * 7 + t * 13) % sizeof pad] = '\0';
			if (strcmp(strrchr(msg, ' ') + 1, pad) != 0)
				bad++;
			else if (seen[t][i]++)
				dup++;
		}
		json_decref(j);
	}
	for (t = 0; t < LOG_THREADS; t++)
		for (i = 0; i < LOG_LINES; i++)
			missing += !seen[t][i];
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(dup, 0);
	CU_ASSERT_EQUAL(missing, 0);
	free_lines(lines, n);
}

static void
test_level_parse(void)
{
	static const struct {
		const char *name;
		int ret;
		enum log_level level;
	} table[] = {
	    {"error", 0, LOG_ERROR},
	    {"warn", 0, LOG_WARN},
	    {"warning", 0, LOG_WARN},
	    {"info", 0, LOG_INFO},
	    {"debug", 0, LOG_DEBUG},
	    {"", -1, 0},
	    {"inf", -1, 0},
	    {"info ", -1, 0},
	    {"verbose", -1, 0},
	    {"trace", -1, 0},
	};
	enum log_level level;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(table); i++) {
		level = (enum log_level)99;
		CU_ASSERT_EQUAL(log_level_parse(table[i].name, &level), table[i].ret);
		if (table[i].ret == 0) {
			CU_ASSERT_EQUAL(level, table[i].level);
		} else {
			CU_ASSERT_EQUAL(level, 99); /* untouched on failure */
		}
	}
}

static void
test_libevent(void)
{
	char path[PATH_MAX];
	char **lines;
	json_t *j;
	size_t n;

	log_set_level(LOG_INFO);
	log_to_new_file(path);
	log_route_libevent();
	/* libevent reports the failing fcntl with event_warn(). */
	CU_ASSERT_EQUAL(evutil_make_socket_nonblocking(-1), -1);
	log_set_level(LOG_ERROR);
	CU_ASSERT_EQUAL(evutil_make_socket_nonblocking(-2), -1); /* a warning, filtered */
	log_set_level(LOG_INFO);
	log_close();
	event_set_log_callback(NULL);

	n = read_lines(path, &lines);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	j = parse_line(lines[0]);
	CU_ASSERT_STRING_EQUAL(field(j, "level"), "warning");
	CU_ASSERT_STRING_EQUAL(field(j, "func"), "libevent");
	CU_ASSERT_PTR_NOT_NULL(strstr(field(j, "msg"), "fcntl(-1"));
	json_decref(j);
	free_lines(lines, n);
}

static void
test_open_fails(void)
{
	char path[PATH_MAX];
	char want[PATH_MAX + 64];
	struct status st;

	snprintf(path, sizeof path, "%s/no/such/dir/log", tmpdir);
	status_clear(&st);
	CU_ASSERT_EQUAL(log_open(path, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	snprintf(want, sizeof want, "log %s: %s", path, strerror(ENOENT));
	CU_ASSERT_STRING_EQUAL(st.msg, want);
}

/* The descriptor of this process that has path open, or -1. */
static int
fd_of(const char *path)
{
	char link[64], target[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int fd = -1;
	ssize_t n;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		n = readlink(link, target, sizeof target - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, path) == 0) {
			fd = atoi(e->d_name);
			break;
		}
	}
	closedir(d);
	return fd;
}

static void
test_file_mode_append_cloexec(void)
{
	char path[PATH_MAX];
	struct status st;
	struct stat sb;
	char **lines;
	mode_t old;
	int fd, fdflags;
	size_t n;
	FILE *f;

	snprintf(path, sizeof path, "%s/log.mode", tmpdir);
	old = umask(022);
	CU_ASSERT_EQUAL_FATAL(log_open(path, &st), 0);
	umask(old);
	CU_ASSERT_EQUAL_FATAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0640);
	fd = fd_of(path);
	CU_ASSERT_TRUE_FATAL(fd > 2);
	fdflags = fcntl(fd, F_GETFD);
	CU_ASSERT_TRUE(fdflags >= 0 && (fdflags & FD_CLOEXEC));
	log_info("first");
	log_close();
	CU_ASSERT_EQUAL(fd_of(path), -1); /* log_close closed it */

	/* Opening again appends; so does someone else writing in between. */
	f = fopen(path, "ae");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("{\"other\":1}\n", f);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(log_open(path, &st), 0);
	log_info("second");
	log_close();
	n = read_lines(path, &lines);
	CU_ASSERT_EQUAL(n, 3);
	if (n == 3) {
		CU_ASSERT_PTR_NOT_NULL(strstr(lines[0], "\"first\""));
		CU_ASSERT_STRING_EQUAL(lines[1], "{\"other\":1}");
		CU_ASSERT_PTR_NOT_NULL(strstr(lines[2], "\"second\""));
	}
	free_lines(lines, n);
}

/* log_close(), and log_open("-") or NULL, send records to stderr again. */
static void
test_back_to_stderr(void)
{
	char path[PATH_MAX], errpath[PATH_MAX];
	struct status st;
	char **lines;
	int saved, errfd;
	size_t n;

	snprintf(errpath, sizeof errpath, "%s/stderr", tmpdir);
	errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CU_ASSERT_TRUE_FATAL(errfd >= 0);
	fflush(stderr);
	saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	CU_ASSERT_TRUE_FATAL(saved >= 0);
	CU_ASSERT_EQUAL_FATAL(dup2(errfd, STDERR_FILENO), STDERR_FILENO);

	log_to_new_file(path);
	log_info("to file 1");
	log_close();
	log_info("to stderr 1");
	log_to_new_file(path);
	CU_ASSERT_EQUAL(log_open("-", &st), 0);
	log_info("to stderr 2");
	log_to_new_file(path);
	CU_ASSERT_EQUAL(log_open(NULL, &st), 0);
	log_info("to stderr 3");
	log_close(); /* already on stderr: must not close fd 2 */
	log_info("to stderr 4");

	dup2(saved, STDERR_FILENO);
	close(saved);
	close(errfd);

	n = read_lines(errpath, &lines);
	CU_ASSERT_EQUAL(n, 4);
	if (n == 4) {
		CU_ASSERT_PTR_NOT_NULL(strstr(lines[0], "\"to stderr 1\""));
		CU_ASSERT_PTR_NOT_NULL(strstr(lines[1], "\"to stderr 2\""));
		CU_ASSERT_PTR_NOT_NULL(strstr(lines[2], "\"to stderr 3\""));
		CU_ASSERT_PTR_NOT_NULL(strstr(lines[3], "\"to stderr 4\""));
	}
	free_lines(lines, n);
}

/* Remove the private directory and everything in it. */
static void
cleanup_tmpdir(void)
{
	struct dirent *e;
	char p[PATH_MAX];
	DIR *d = opendir(tmpdir);

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tmpdir);
}

static const struct unit_case cases[] = {
    {"fields of a record", test_fields},
    {"level filtering, arguments not evaluated", test_level_filter},
    {"escaping round-trips through jansson", test_escaping},
    {"long messages: one valid line", test_long_message},
    {"4 threads x 1000 lines, no interleaving", test_threads},
    {"log_level_parse table", test_level_parse},
    {"libevent messages routed in", test_libevent},
    {"log_open failure status", test_open_fails},
    {"file mode, append, cloexec", test_file_mode_append_cloexec},
    {"back to stderr", test_back_to_stderr},
    {NULL, NULL},
};

int
main(void)
{
	int r;

	if (mkdtemp(tmpdir) == NULL)
		unit_skip("mkdtemp failed");
	r = unit_main("log", cases);
	cleanup_tmpdir();
	return r;
}
