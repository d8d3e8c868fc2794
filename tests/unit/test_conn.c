/*
 * test_conn.c: the reference-counted connection (common/conn.c).
 *
 * Single-threaded cases check the count, the order destroy-then-close and that the fd is
 * really closed (fcntl F_GETFD fails with EBADF) only after the last unref. The two-thread
 * cases race two holders on many connections: the last unref must destroy and close each
 * one exactly once, and exactly one of two racing conn_mark_broken() calls must win. Worker
 * threads only record into atomics; CUnit assertions run on the main thread. Build with
 * --enable-tsan to have ThreadSanitizer check the memory ordering as well.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conn.h"
#include "unit.h"
#include "util.h"

#define RACE_CONNS 10000

/* True if fd is an open descriptor of this process. */
static bool
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* True if fd is closed, as EBADF from fcntl says. */
static bool
fd_is_closed(int fd)
{
	return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

/* Number of open descriptors, from /proc/self/fd (not counting the directory's own fd). */
static int
count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static int
open_null(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fatal("open /dev/null");
	return fd;
}

/* What a destructor saw: how often it ran and whether the fd was still open then. */
struct probe {
	int fd;
	int destroyed;
	bool fd_open_in_destroy;
};

static void
probe_destroy(void *data)
{
	struct probe *p = data;

	p->destroyed++;
	p->fd_open_in_destroy = fd_is_open(p->fd);
}

static void
test_refcount_basics(void)
{
	int fd = open_null();
	struct probe p = {.fd = fd};
	struct conn *c = conn_new(fd, probe_destroy, &p);

	CU_ASSERT_EQUAL(conn_refs(c), 1);
	CU_ASSERT_EQUAL(conn_fd(c), fd);
	CU_ASSERT_PTR_EQUAL(conn_data(c), &p);
	CU_ASSERT_PTR_EQUAL(conn_ref(c), c);
	CU_ASSERT_EQUAL(conn_refs(c), 2);
	conn_ref(c);
	CU_ASSERT_EQUAL(conn_refs(c), 3);
	conn_unref(c);
	conn_unref(c);
	CU_ASSERT_EQUAL(conn_refs(c), 1);
	CU_ASSERT_EQUAL(p.destroyed, 0);
	CU_ASSERT_TRUE(fd_is_open(fd));
	conn_unref(c);
	CU_ASSERT_EQUAL(p.destroyed, 1);
	conn_unref(NULL); /* a no-op */
}

static void
test_destroy_before_close(void)
{
	int fd = open_null();
	struct probe p = {.fd = fd};
	struct conn *c = conn_new(fd, probe_destroy, &p);

	conn_ref(c);
	conn_unref(c);
	CU_ASSERT_EQUAL(p.destroyed, 0);
	CU_ASSERT_TRUE(fd_is_open(fd)); /* not closed before the last unref */
	conn_unref(c);
	CU_ASSERT_EQUAL(p.destroyed, 1);
	CU_ASSERT_TRUE(p.fd_open_in_destroy); /* destroy ran before the close */
	CU_ASSERT_TRUE(fd_is_closed(fd));
}

static void
test_no_destructor(void)
{
	int before = count_open_fds();
	int fd = open_null();
	struct conn *c = conn_new(fd, NULL, NULL);

	CU_ASSERT_PTR_NULL(conn_data(c));
	CU_ASSERT_EQUAL(count_open_fds(), before + 1);
	conn_unref(c);
	CU_ASSERT_TRUE(fd_is_closed(fd));
	CU_ASSERT_EQUAL(count_open_fds(), before);
}

static void
test_mark_broken_once(void)
{
	int fd = open_null();
	struct conn *c = conn_new(fd, NULL, NULL);

	CU_ASSERT_FALSE(conn_is_broken(c));
	CU_ASSERT_TRUE(conn_mark_broken(c));
	CU_ASSERT_TRUE(conn_is_broken(c));
	CU_ASSERT_FALSE(conn_mark_broken(c));
	CU_ASSERT_FALSE(conn_mark_broken(c));
	CU_ASSERT_TRUE(conn_is_broken(c));
	/* Broken does not close: the fd stays until the last unref. */
	CU_ASSERT_TRUE(fd_is_open(fd));
	conn_unref(c);
	CU_ASSERT_TRUE(fd_is_closed(fd));
}

/*
 * One connection of the race. The two holders write `touched` (plain, not atomic) before
 * their unref; the destructor reads both, so without acq_rel ordering on the count TSan
 * reports a race and the destructor may see a holder's write missing.
 */
struct slot {
	struct conn *conn;
	int fd;
	int touched[2];
	atomic_int destroyed;
	atomic_int saw_both;
	atomic_int fd_open_in_destroy;
	atomic_int broken_wins;
	atomic_int arrived; /* mark race: both threads reached this conn */
};

static atomic_int race_destroyed;

static void
slot_destroy(void *data)
{
	struct slot *s = data;

	atomic_fetch_add(&s->destroyed, 1);
	atomic_fetch_add(&race_destroyed, 1);
	if (s->touched[0] == 1 && s->touched[1] == 1)
		atomic_fetch_add(&s->saw_both, 1);
	if (fd_is_open(s->fd))
		atomic_fetch_add(&s->fd_open_in_destroy, 1);
}

struct racer {
	int who; /* 0 or 1: which `touched` slot this thread writes */
	struct slot *slots;
	size_t n;
	unsigned seed;
	bool shuffle;
	bool lockstep; /* both threads meet at each conn before acting on it */
	pthread_barrier_t *start;
	int (*step)(struct racer *r, struct slot *s);
};

/* Drop this thread's reference, after a few extra ref/unref pairs to vary the timing. */
static int
racer_unref(struct racer *r, struct slot *s)
{
	int extra = rand_r(&r->seed) % 3;

	while (extra-- > 0)
		conn_unref(conn_ref(s->conn));
	s->touched[r->who] = 1;
	conn_unref(s->conn);
	return 0;
}

static int
racer_mark(struct racer *r, struct slot *s)
{
	if (conn_mark_broken(s->conn))
		atomic_fetch_add(&s->broken_wins, 1);
	return 0;
}

/* Wait for the other thread to reach this conn too, so both act on it at nearly once. */
static void
racer_meet(struct slot *s)
{
	unsigned spins = 0;

	atomic_fetch_add(&s->arrived, 1);
	while (atomic_load(&s->arrived) < 2)
		if (++spins % 1024 == 0)
			sched_yield(); /* a single CPU must let the other thread run */
}

static void *
racer_main(void *arg)
{
	struct racer *r = arg;
	size_t *order = xcalloc(r->n, sizeof *order);
	size_t i, j, t;

	for (i = 0; i < r->n; i++)
		order[i] = i;
	if (r->shuffle) {
		for (i = r->n; i > 1; i--) {
			j = (size_t)rand_r(&r->seed) % i;
			t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
	}
	pthread_barrier_wait(r->start);
	for (i = 0; i < r->n; i++) {
		if (r->lockstep)
			racer_meet(&r->slots[order[i]]);
		r->step(r, &r->slots[order[i]]);
	}
	free(order);
	return NULL;
}

/* How many connections one round may open, given RLIMIT_NOFILE. */
static size_t
race_batch(void)
{
	struct rlimit rl;
	size_t room;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < RACE_CONNS + 256 &&
	    rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < RACE_CONNS + 256 ? rl.rlim_max : RACE_CONNS + 256;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return RACE_CONNS;
	room = rl.rlim_cur > 256 ? rl.rlim_cur - 128 - (size_t)count_open_fds() : 64;
	return room < RACE_CONNS ? room : RACE_CONNS;
}

/*
 * Run RACE_CONNS connections through two racing threads, in rounds that fit the fd limit.
 * With `unref`, each conn starts with two references, one per thread, which the threads
 * drop in independent random orders (or, with `lockstep`, on the same conn at once);
 * otherwise both threads race conn_mark_broken on each conn in lockstep and main drops the
 * single reference afterwards.
 */
static void
race(bool unref, bool lockstep)
{
	struct slot *slots = xcalloc(RACE_CONNS, sizeof *slots);
	size_t batch = race_batch();
	int baseline = count_open_fds();
	size_t done, n, i;
	int bad_destroy = 0, bad_both = 0, bad_open = 0, bad_closed = 0, bad_wins = 0;
	int fd_leak = 0;

	CU_ASSERT_TRUE_FATAL(baseline > 0);
	atomic_store(&race_destroyed, 0);
	for (done = 0; done < RACE_CONNS; done += n) {
		pthread_barrier_t start;
		struct racer r[2];
		pthread_t th[2];
		struct slot *s = slots + done;

		n = RACE_CONNS - done < batch ? RACE_CONNS - done : batch;
		for (i = 0; i < n; i++) {
			s[i].fd = open_null();
			s[i].conn = conn_new(s[i].fd, slot_destroy, &s[i]);
			if (unref)
				conn_ref(s[i].conn);
		}
		pthread_barrier_init(&start, NULL, 2);
		for (i = 0; i < 2; i++) {
			r[i] = (struct racer){
			    .who = (int)i,
			    .slots = s,
			    .n = n,
			    .seed = (unsigned)(done * 2 + i + 1),
			    .shuffle = unref && !lockstep,
			    .lockstep = lockstep,
			    .start = &start,
			    .step = unref ? racer_unref : racer_mark,
			};
			CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
		}
		for (i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&start);
		if (!unref) {
			for (i = 0; i < n; i++) {
				if (atomic_load(&s[i].broken_wins) != 1 ||
				    !conn_is_broken(s[i].conn))
					bad_wins++;
				if (atomic_load(&s[i].destroyed) != 0)
					bad_destroy++;
				conn_unref(s[i].conn);
			}
		}
		/* No descriptor was opened since the round began, so numbers cannot be reused. */
		for (i = 0; i < n; i++)
			if (!fd_is_closed(s[i].fd))
				bad_closed++;
		if (count_open_fds() != baseline)
			fd_leak++;
	}
	for (i = 0; i < RACE_CONNS; i++) {
		if (atomic_load(&slots[i].destroyed) != 1)
			bad_destroy++;
		if (atomic_load(&slots[i].fd_open_in_destroy) != 1)
			bad_open++;
		if (unref && atomic_load(&slots[i].saw_both) != 1)
			bad_both++;
	}
	CU_ASSERT_EQUAL(atomic_load(&race_destroyed), RACE_CONNS);
	CU_ASSERT_EQUAL(bad_destroy, 0);
	CU_ASSERT_EQUAL(bad_open, 0);
	CU_ASSERT_EQUAL(bad_both, 0);
	CU_ASSERT_EQUAL(bad_closed, 0);
	CU_ASSERT_EQUAL(bad_wins, 0);
	CU_ASSERT_EQUAL(fd_leak, 0);
	CU_ASSERT_EQUAL(count_open_fds(), baseline);
	free(slots);
}

static void
test_race_unref(void)
{
	race(true, false);
}

static void
test_race_unref_lockstep(void)
{
	race(true, true);
}

static void
test_race_mark_broken(void)
{
	race(false, true);
}

static const struct unit_case cases[] = {
    {"refcount basics", test_refcount_basics},
    {"destroy runs once, before the close", test_destroy_before_close},
    {"no destructor, fd closed", test_no_destructor},
    {"mark_broken true once", test_mark_broken_once},
    {"two threads race unref on 10000 conns", test_race_unref},
    {"two threads unref each of 10000 conns at once", test_race_unref_lockstep},
    {"two threads race mark_broken on 10000 conns", test_race_mark_broken},
    {NULL, NULL},
};

int
main(void)
{
	return unit_main("conn", cases);
}
