/*
 * test_worker.c: the worker pool's bring-up limit (shim/worker.c, worker_submit_bringup) and
 * the start of its shutdown.
 *
 * Bring-up jobs here block on a gate the test opens, as Creates queued on a confidential VM's
 * bring-up lock would. With 3 workers at most 2 of them may run at once, so an ordinary job
 * submitted behind them must still run and complete (its `done` on the loop) while the gate
 * is closed; then the gate opens and every bring-up job completes, never more than 2 at once.
 *
 * Shutdown's first step (worker_stop_begin): with the only worker busy and a job queued,
 * worker_stopping() turns true, and once the busy job ends the queued one is never run, only
 * handed to its `done` by worker_shutdown.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "shim.h"
#include "unit.h"
#include "util.h"

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int running, max_running, started, done_bringups, done_plain, ran_plain;
static int order[8], norder;

static void
bringup_run(void *arg)
{
	int now = atomic_fetch_add(&running, 1) + 1, max = atomic_load(&max_running);

	while (now > max && !atomic_compare_exchange_weak(&max_running, &max, now))
		;
	atomic_fetch_add(&started, 1);
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	atomic_fetch_sub(&running, 1);
}

static void
bringup_done(void *arg)
{
	order[norder++] = (int)(intptr_t)arg;
	atomic_fetch_add(&done_bringups, 1);
}

static void
plain_run(void *arg)
{
	atomic_fetch_add(&ran_plain, 1);
}

static void
plain_done(void *arg)
{
	atomic_fetch_add(&done_plain, 1);
}

/* Run the loop (bounded: 5 s) until *counter reaches want. */
static bool
loop_until(struct event_base *base, atomic_int *counter, int want)
{
	int64_t deadline = time_mono_ms() + 5000;
	struct timeval tick = {0, 10000};

	while (atomic_load(counter) < want && time_mono_ms() < deadline) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	return atomic_load(counter) >= want;
}

static void
test_bringup_limit(void)
{
	struct event_base *base;
	struct status st;
	int i;

	CU_ASSERT_FATAL(evthread_use_pthreads() == 0);
	base = event_base_new();
	CU_ASSERT_FATAL(base != NULL);
	CU_ASSERT_FATAL(worker_init(base, 3, 16, &st) == 0);
	for (i = 0; i < 5; i++)
		CU_ASSERT(worker_submit_bringup(
			      bringup_run, bringup_done, (void *)(intptr_t)i, &st) == 0);
	/* Two bring-ups start and block; the other three wait in the queue. */
	for (i = 0; i < 500 && atomic_load(&started) < 2; i++)
		fd_wait(-1, 0, time_mono_ms() + 10);
	CU_ASSERT_EQUAL(atomic_load(&started), 2);
	/* An ordinary job behind them runs on the third worker and completes. */
	CU_ASSERT(worker_submit(NULL, plain_done, NULL, &st) == 0);
	CU_ASSERT(loop_until(base, &done_plain, 1));
	CU_ASSERT_EQUAL(atomic_load(&started), 2);
	CU_ASSERT_EQUAL(atomic_load(&done_bringups), 0);

	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_mu);
	CU_ASSERT(loop_until(base, &done_bringups, 5));
	CU_ASSERT_EQUAL(atomic_load(&max_running), 2);
	CU_ASSERT_EQUAL(norder, 5);
	worker_shutdown();
	event_base_free(base);
}

static void
test_stop_begin(void)
{
	struct event_base *base;
	struct status st;
	int i;

	gate_open = false;
	atomic_store(&started, 0);
	atomic_store(&done_bringups, 0);
	atomic_store(&done_plain, 0);
	norder = 0;
	base = event_base_new();
	CU_ASSERT_FATAL(base != NULL);
	CU_ASSERT_FATAL(worker_init(base, 1, 16, &st) == 0);
	CU_ASSERT(worker_submit(bringup_run, bringup_done, (void *)(intptr_t)0, &st) == 0);
	for (i = 0; i < 500 && atomic_load(&started) < 1; i++)
		fd_wait(-1, 0, time_mono_ms() + 10);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&started), 1);
	CU_ASSERT(worker_submit(plain_run, plain_done, NULL, &st) == 0);
	CU_ASSERT_FALSE(worker_stopping());
	worker_stop_begin();
	CU_ASSERT_TRUE(worker_stopping());
	/* The busy job ends; its worker is free, the queued job stays unrun. */
	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_mu);
	CU_ASSERT(loop_until(base, &done_bringups, 1));
	worker_shutdown();
	CU_ASSERT_EQUAL(atomic_load(&ran_plain), 0);
	CU_ASSERT_EQUAL(atomic_load(&done_plain), 1);
	event_base_free(base);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"bring-up jobs take at most workers - 1", test_bringup_limit},
	    {"no queued job starts once shutdown began", test_stop_begin},
	    {NULL, NULL},
	};

	return unit_main("worker", cases);
}
