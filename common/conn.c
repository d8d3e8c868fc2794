/*
 * conn.c: a reference-counted owner of one descriptor.
 *
 * A struct conn owns its fd from conn_new() until the last conn_unref(), which runs the
 * owner's destructor (for the per-connection data) and then closes the fd, exactly once, on
 * whichever thread dropped that last reference. Any thread may hold references; the count
 * and the broken flag are C11 atomics, so no mutex is taken. The decrement is acq_rel: every
 * holder's writes before its unref happen-before the destructor, which therefore sees the
 * final state of the data without further locking. The fd and data never change after
 * conn_new(), so reading them needs no synchronisation beyond holding a reference.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "conn.h"
#include "util.h"

struct conn {
	atomic_uint refs;   /* holders; the one that takes it to 0 frees */
	atomic_bool broken; /* set once, never cleared */
	int fd;		    /* owned; closed at the last unref */
	void (*destroy)(void *data);
	void *data; /* the owner's; handed to destroy at the last unref */
};

/* Wrap fd (which the conn now owns) with one reference held by the caller. */
struct conn *
conn_new(int fd, void (*destroy)(void *data), void *data)
{
	struct conn *c = xmalloc(sizeof *c);

	atomic_init(&c->refs, 1);
	atomic_init(&c->broken, false);
	c->fd = fd;
	c->destroy = destroy;
	c->data = data;
	return c;
}

/* Take another reference; the caller must already hold one, so the count cannot be 0. */
struct conn *
conn_ref(struct conn *c)
{
	unsigned old = atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);

	if (old == 0)
		fatalx("conn_ref on a connection with no references (fd %d)", c->fd);
	return c;
}

/* Drop a reference; the thread that drops the last one destroys the data, closes, frees. */
void
conn_unref(struct conn *c)
{
	unsigned old;

	if (c == NULL)
		return;
	old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
	if (old == 0)
		fatalx("conn_unref on a connection with no references (fd %d)", c->fd);
	if (old != 1)
		return;
	if (c->destroy != NULL)
		c->destroy(c->data);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

int
conn_fd(const struct conn *c)
{
	return c->fd;
}

void *
conn_data(const struct conn *c)
{
	return c->data;
}

/* Mark the connection unusable; only the first caller of all threads gets true. */
bool
conn_mark_broken(struct conn *c)
{
	return !atomic_exchange_explicit(&c->broken, true, memory_order_acq_rel);
}

bool
conn_is_broken(const struct conn *c)
{
	/* C11 atomic loads take a non-const pointer in older compilers' headers. */
	return atomic_load_explicit(&((struct conn *)c)->broken, memory_order_acquire);
}

unsigned
conn_refs(const struct conn *c)
{
	return atomic_load_explicit(&((struct conn *)c)->refs, memory_order_relaxed);
}
