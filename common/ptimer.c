/*
 * ptimer.c: one-shot microsecond timers on a libevent loop, by timerfd (see ptimer.h for why
 * libevent's own timers are too coarse for the stdio batching windows).
 *
 * The timerfd is created lazily on the first ptimer_arm, so streams that never batch hold no
 * extra descriptor. Its read event stays added for the timer's life (no epoll_ctl per
 * window). timerfd_settime resets the expiry count, so re-arming or disarming discards an
 * expiry that the loop has not delivered yet; a wake-up that finds the timer disarmed (or
 * nothing to read) is ignored.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "ptimer.h"
#include "util.h"

struct ptimer {
	struct event_base *base;
	event_callback_fn cb;
	void *arg;
	int fd; /* -1 until first armed; owned, closed by ptimer_free */
	struct event *ev;
	bool armed;
};

static void
ptimer_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ptimer *t = arg;
	uint64_t ticks;
	ssize_t n;

	(void)what;
	n = read(fd, &ticks, sizeof ticks);
	if (n != (ssize_t)sizeof ticks || !t->armed)
		return; /* re-armed or disarmed since it became readable */
	t->armed = false;
	t->cb(-1, EV_TIMEOUT, t->arg);
}

struct ptimer *
ptimer_new(struct event_base *base, event_callback_fn cb, void *arg)
{
	struct ptimer *t = xcalloc(1, sizeof *t);

	t->base = base;
	t->cb = cb;
	t->arg = arg;
	t->fd = -1;
	return t;
}

int
ptimer_arm(struct ptimer *t, unsigned int us)
{
	struct itimerspec its = {{0, 0}, {us / 1000000, (long)(us % 1000000) * 1000}};

	if (us == 0)
		its.it_value.tv_nsec = 1; /* zero would disarm */
	if (t->fd < 0) {
		t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (t->fd < 0)
			return -errno;
		t->ev = event_new(t->base, t->fd, EV_READ | EV_PERSIST, ptimer_on_read, t);
		if (t->ev == NULL)
			fatalx("event_new");
		event_add(t->ev, NULL);
	}
	if (timerfd_settime(t->fd, 0, &its, NULL) < 0)
		return -errno;
	t->armed = true;
	return 0;
}

void
ptimer_disarm(struct ptimer *t)
{
	static const struct itimerspec off;

	if (!t->armed)
		return;
	t->armed = false;
	(void)timerfd_settime(t->fd, 0, &off, NULL);
}

bool
ptimer_pending(const struct ptimer *t)
{
	return t->armed;
}

void
ptimer_free(struct ptimer *t)
{
	if (t == NULL)
		return;
	if (t->ev != NULL)
		event_free(t->ev);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}
