/*
 * worker.c: the worker pool that runs blocking jobs off the loop thread.
 *
 * DESIGN (as redis bio.c): `nworkers` threads take self-contained jobs from one bounded FIFO
 * queue; a worker holds the queue lock only to take a job, never while running it. When
 * `run` returns, the job goes on a completion list (its own lock) and the worker writes to an
 * eventfd that the loop watches, so every `done` callback runs on the loop thread, where all
 * shim state lives. A full queue fails worker_submit() at once (the caller answers
 * RESOURCE_EXHAUSTED): no request ever waits for a free slot. The job struct is freed here;
 * the job's arg belongs to its `done` callback.
 *
 * Bring-up jobs (worker_submit_bringup: container bring-up and disk removal, which may wait
 * on the per-VM bring-up lock, QEMU or an unplug timeout) run on at most max(1, nworkers - 1)
 * workers at once: a worker skips a queued bring-up job while that many are running, so with
 * two or more workers one always stays free for Kill, Pids, Start, Exec, the guest link's
 * connect and everything else, however many confidential Creates queue up on the lock.
 * Ordinary jobs keep their FIFO order, and so do bring-up jobs among themselves.
 *
 * Shutdown does not run what is still queued: worker_shutdown() takes the queue, lets the
 * running jobs finish, joins the threads and then hands each queued job to its `done` without
 * running `run` (the task code finds its process gone and answers UNAVAILABLE "the shim is
 * shutting down"). worker_stopping() (an atomic flag) lets long jobs such as a bring-up stop
 * between steps. worker_stop_begin() raises that flag and stops workers from taking queued
 * jobs at the very start of shutdown, before the rest of the shim (the agent link first) is
 * torn down: a job freed by that teardown (a guest call failing at once) must not let a
 * queued job start, nor a bring-up go on to its next step unaware.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shim.h"
#include "util.h"

struct worker_job {
	void (*run)(void *);
	void (*done)(void *);
	void *arg;
	bool bringup; /* counts against bringup_max */
	struct worker_job *next;
};

static struct {
	pthread_t *threads;
	unsigned nthreads;
	unsigned cap;

	/* queue_lock guards head, tail, len, stopping and bringup_running. */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_cond;
	struct worker_job *head, *tail;
	unsigned len;
	bool stopping;
	unsigned bringup_running; /* bring-up jobs being run now */
	unsigned bringup_max;	  /* max(1, nthreads - 1), set by worker_init */

	/* done_lock guards done_head and done_tail. */
	pthread_mutex_t done_lock;
	struct worker_job *done_head, *done_tail;

	int efd;	  /* eventfd; owned here */
	struct event *ev; /* loop-thread event on efd */
	bool started;
	atomic_bool stop; /* worker_stopping(): any thread may read it */
} wk = {
    .queue_lock = PTHREAD_MUTEX_INITIALIZER,
    .queue_cond = PTHREAD_COND_INITIALIZER,
    .done_lock = PTHREAD_MUTEX_INITIALIZER,
    .efd = -1,
};

/* Loop thread: run the done callbacks of every finished job, in completion order. */
static void
worker_run_completions(void)
{
	struct worker_job *list, *j;
	uint64_t v;

	if (read(wk.efd, &v, sizeof v) < 0 && errno != EAGAIN)
		log_warn("eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&wk.done_lock);
	list = wk.done_head;
	wk.done_head = wk.done_tail = NULL;
	pthread_mutex_unlock(&wk.done_lock);
	while ((j = list) != NULL) {
		list = j->next;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void
worker_eventfd_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_run_completions();
}

/*
 * queue_lock held: unlink the first job this worker may run (a bring-up job only while fewer
 * than bringup_max run), or NULL.
 */
static struct worker_job *
worker_take_locked(void)
{
	struct worker_job *j, *prev = NULL;

	if (atomic_load(&wk.stop))
		return NULL; /* shutting down: what is queued is handed back, not run */
	for (j = wk.head; j != NULL; prev = j, j = j->next) {
		if (j->bringup && wk.bringup_running >= wk.bringup_max)
			continue;
		if (prev != NULL)
			prev->next = j->next;
		else
			wk.head = j->next;
		if (wk.tail == j)
			wk.tail = prev;
		wk.len--;
		if (j->bringup)
			wk.bringup_running++;
		return j;
	}
	return NULL;
}

/* Worker thread body: take a job (lock held only for that), run it, post its completion. */
static void *
worker_main(void *arg)
{
	static const uint64_t one = 1;
	struct worker_job *j;

	for (;;) {
		pthread_mutex_lock(&wk.queue_lock);
		/* Skipped bring-up jobs are run by whoever a finishing bring-up wakes. */
		while ((j = worker_take_locked()) == NULL && !(wk.stopping && wk.head == NULL))
			pthread_cond_wait(&wk.queue_cond, &wk.queue_lock);
		pthread_mutex_unlock(&wk.queue_lock);
		if (j == NULL) /* stopping and drained */
			return NULL;

		if (j->run != NULL)
			j->run(j->arg);
		if (j->bringup) {
			pthread_mutex_lock(&wk.queue_lock);
			wk.bringup_running--;
			pthread_cond_broadcast(&wk.queue_cond);
			pthread_mutex_unlock(&wk.queue_lock);
		}

		j->next = NULL;
		pthread_mutex_lock(&wk.done_lock);
		if (wk.done_tail != NULL)
			wk.done_tail->next = j;
		else
			wk.done_head = j;
		wk.done_tail = j;
		pthread_mutex_unlock(&wk.done_lock);
		if (write(wk.efd, &one, sizeof one) < 0 && errno != EAGAIN)
			log_warn("eventfd write: %s", strerror(errno));
	}
}

int
worker_init(
    struct event_base *base, unsigned nworkers, unsigned queue_per_worker, struct status *st)
{
	int r;

	/* A pool that was shut down may be started again (the unit tests do). */
	wk.stopping = false;
	atomic_store(&wk.stop, false);
	wk.nthreads = 0;
	wk.bringup_running = 0;
	wk.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wk.efd < 0)
		return status_errno(st, ST_INTERNAL, errno, "workers: eventfd");
	wk.ev = event_new(base, wk.efd, EV_READ | EV_PERSIST, worker_eventfd_cb, NULL);
	if (wk.ev == NULL || event_add(wk.ev, NULL) < 0)
		fatalx("workers: event_new");
	wk.cap = nworkers * queue_per_worker;
	wk.bringup_max = nworkers > 1 ? nworkers - 1 : 1;
	wk.threads = xcalloc(nworkers, sizeof *wk.threads);
	for (unsigned i = 0; i < nworkers; i++) {
		r = pthread_create(&wk.threads[i], NULL, worker_main, NULL);
		if (r != 0)
			return status_errno(st, ST_INTERNAL, r, "workers: pthread_create");
		wk.nthreads++;
	}
	wk.started = true;
	return 0;
}

/* Queue a job of either kind (see the design paragraph). */
static int
worker_enqueue(
    void (*run)(void *), void (*done)(void *), void *arg, bool bringup, struct status *st)
{
	struct worker_job *j;

	pthread_mutex_lock(&wk.queue_lock);
	if (wk.stopping || wk.len >= wk.cap) {
		bool stopping = wk.stopping;

		pthread_mutex_unlock(&wk.queue_lock);
		if (stopping)
			return status_set(st, ST_UNAVAILABLE, "the shim is shutting down");
		return status_set(
		    st, ST_RESOURCE_EXHAUSTED, "worker queue full (%u jobs waiting)", wk.cap);
	}
	j = xcalloc(1, sizeof *j);
	j->run = run;
	j->done = done;
	j->arg = arg;
	j->bringup = bringup;
	if (wk.tail != NULL)
		wk.tail->next = j;
	else
		wk.head = j;
	wk.tail = j;
	wk.len++;
	/* One waiter suffices: if it may not run a bring-up job now, no worker may. */
	pthread_cond_signal(&wk.queue_cond);
	pthread_mutex_unlock(&wk.queue_lock);
	return 0;
}

int
worker_submit(void (*run)(void *), void (*done)(void *), void *arg, struct status *st)
{
	return worker_enqueue(run, done, arg, false, st);
}

int
worker_submit_bringup(void (*run)(void *), void (*done)(void *), void *arg, struct status *st)
{
	return worker_enqueue(run, done, arg, true, st);
}

bool
worker_stopping(void)
{
	return atomic_load(&wk.stop);
}

void
worker_stop_begin(void)
{
	if (!wk.started)
		return;
	pthread_mutex_lock(&wk.queue_lock);
	atomic_store(&wk.stop, true);
	pthread_mutex_unlock(&wk.queue_lock);
}

void
worker_shutdown(void)
{
	struct worker_job *skipped, *j;
	unsigned n;

	if (!wk.started)
		return;
	atomic_store(&wk.stop, true);
	pthread_mutex_lock(&wk.queue_lock);
	wk.stopping = true;
	/* Queued, not started: never run, only handed back to `done` (after the join). */
	skipped = wk.head;
	wk.head = wk.tail = NULL;
	wk.len = 0;
	pthread_cond_broadcast(&wk.queue_cond);
	pthread_mutex_unlock(&wk.queue_lock);
	for (unsigned i = 0; i < wk.nthreads; i++)
		pthread_join(wk.threads[i], NULL);
	worker_run_completions();
	for (n = 0; (j = skipped) != NULL; n++) {
		skipped = j->next;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
	if (n > 0)
		log_info("shutting down: %u queued job(s) answered without being run", n);
	event_free(wk.ev);
	wk.ev = NULL;
	close(wk.efd);
	wk.efd = -1;
	free(wk.threads);
	wk.threads = NULL;
	wk.started = false;
}
