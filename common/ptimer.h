/*
 * ptimer.h: a one-shot timer with microsecond precision on a libevent loop (a timerfd).
 *
 * libevent 2.1 keeps time with CLOCK_MONOTONIC_COARSE unless its base was made with
 * EVENT_BASE_FLAG_PRECISE_TIMER: an evtimer of 500 us then fires after 1 to 4.5 ms (the
 * kernel's tick), and epoll_wait's timeout is in whole milliseconds anyway. The stdio data
 * plane's batching windows must be short and exact (a writer fills a 1 MiB pipe in about
 * 1.5 ms), so they use this instead: a timerfd on CLOCK_MONOTONIC, watched by one persistent
 * read event. Arming costs one timerfd_settime, expiry one read; the loop is never asked for
 * a sub-millisecond timeout. The fd is created on first use and closed by ptimer_free.
 * Loop thread only, like the event it wraps.
 */
#ifndef VMSHIM_PTIMER_H
#define VMSHIM_PTIMER_H

#include <stdbool.h>

#include <event2/event.h>

struct ptimer;

/* A disarmed timer calling cb(-1, EV_TIMEOUT, arg) when it expires. Never NULL. */
struct ptimer *ptimer_new(struct event_base *base, event_callback_fn cb, void *arg);
/* Arm (or re-arm) to fire once, us microseconds from now. -errno if it cannot be armed. */
int ptimer_arm(struct ptimer *t, unsigned int us);
/* Disarm: an expiry not yet delivered is dropped. */
void ptimer_disarm(struct ptimer *t);
bool ptimer_pending(const struct ptimer *t);
/* Close the fd and free; NULL is a no-op. */
void ptimer_free(struct ptimer *t);

#endif
