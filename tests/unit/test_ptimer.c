/*
 * test_ptimer.c: the timerfd one-shot timer of the stdio batching windows (common/ptimer.c).
 *
 * What matters to its callers: it fires exactly once per arming, a disarm or a re-arm drops
 * an expiry the loop has not delivered yet (the stream may have moved on), and freeing an
 * armed timer leaks nothing. No timing is asserted: a case that must see an expiry happen
 * waits for the monotonic clock to pass it (a hang guard ends the loop after 10 s).
 */
#include "config.h"

#include <stdbool.h>
#include <time.h>

#include <event2/event.h>

#include "ptimer.h"
#include "unit.h"

static int ptimer_fired;

static void
on_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	CU_ASSERT_EQUAL(what, EV_TIMEOUT);
	CU_ASSERT_PTR_EQUAL(arg, &ptimer_fired);
	ptimer_fired++;
}

static void
on_guard(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Spin until the monotonic clock moved by at least us: an armed timer of us has expired. */
static void
pass_us(long us)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static void
test_fires_once(void)
{
	struct event_base *base = event_base_new();
	struct timeval ten = {10, 0};
	struct event *guard = evtimer_new(base, on_guard, base);
	struct ptimer *t = ptimer_new(base, on_fire, &ptimer_fired);

	ptimer_fired = 0;
	CU_ASSERT_FALSE(ptimer_pending(t));
	CU_ASSERT_EQUAL_FATAL(ptimer_arm(t, 500), 0);
	CU_ASSERT_TRUE(ptimer_pending(t));
	evtimer_add(guard, &ten);
	while (ptimer_fired == 0 && evtimer_pending(guard, NULL))
		event_base_loop(base, EVLOOP_ONCE);
	CU_ASSERT_EQUAL(ptimer_fired, 1);
	CU_ASSERT_FALSE(ptimer_pending(t));
	/* Nothing more without a new arming. */
	pass_us(2000);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CU_ASSERT_EQUAL(ptimer_fired, 1);
	/* Armed again, it fires again. */
	CU_ASSERT_EQUAL_FATAL(ptimer_arm(t, 0), 0);
	while (ptimer_fired == 1 && evtimer_pending(guard, NULL))
		event_base_loop(base, EVLOOP_ONCE);
	CU_ASSERT_EQUAL(ptimer_fired, 2);
	ptimer_free(t);
	event_free(guard);
	event_base_free(base);
}

static void
test_disarm_drops_expiry(void)
{
	struct event_base *base = event_base_new();
	struct ptimer *t = ptimer_new(base, on_fire, &ptimer_fired);

	ptimer_fired = 0;
	CU_ASSERT_EQUAL_FATAL(ptimer_arm(t, 1), 0);
	pass_us(1000); /* expired, not yet delivered */
	ptimer_disarm(t);
	CU_ASSERT_FALSE(ptimer_pending(t));
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CU_ASSERT_EQUAL(ptimer_fired, 0);
	ptimer_disarm(t); /* twice is harmless */
	ptimer_free(t);
	event_base_free(base);
}

static void
test_rearm_drops_expiry(void)
{
	struct event_base *base = event_base_new();
	struct ptimer *t = ptimer_new(base, on_fire, &ptimer_fired);

	ptimer_fired = 0;
	CU_ASSERT_EQUAL_FATAL(ptimer_arm(t, 1), 0);
	pass_us(1000);
	CU_ASSERT_EQUAL_FATAL(ptimer_arm(t, 10 * 1000 * 1000), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CU_ASSERT_EQUAL(ptimer_fired, 0);
	CU_ASSERT_TRUE(ptimer_pending(t));
	ptimer_free(t); /* armed: closes its fd, frees its event */
	ptimer_free(NULL);
	event_base_free(base);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"fires once per arming", test_fires_once},
	    {"disarm drops an undelivered expiry", test_disarm_drops_expiry},
	    {"re-arm drops an undelivered expiry", test_rearm_drops_expiry},
	    {NULL, NULL},
	};

	return unit_main("ptimer", cases);
}
