/*
 * conn.h: a reference-counted owner of one descriptor (seed 002).
 *
 * Whoever may still use a connection's fd holds a reference; the fd is closed exactly once,
 * by whoever drops the last reference, so a thread using the fd never sees EBADF or, worse, a
 * reused fd number. conn_mark_broken only sets a flag that holders check before their next
 * operation: it does not wake a thread already blocked in poll(), read() or write() on the fd,
 * and nothing here does. A holder that may block on the fd must bound the wait itself (a
 * deadline, and a wake descriptor of its own polled beside the fd, as rpc_client does with an
 * eventfd). The reference count and the broken flag are atomics; conn is safe to hand between
 * threads. An optional destructor runs at the last unref, before the close, for the owner's
 * per-connection data.
 */
#ifndef VMSHIM_CONN_H
#define VMSHIM_CONN_H

#include <stdbool.h>

struct conn;

/* Take ownership of fd (refcount 1). The destructor (may be NULL) gets `data`. */
struct conn *conn_new(int fd, void (*destroy)(void *data), void *data);
struct conn *conn_ref(struct conn *c);
/* Drop a reference; the last one runs the destructor and closes the fd. NULL is a no-op. */
void conn_unref(struct conn *c);
int conn_fd(const struct conn *c);
void *conn_data(const struct conn *c);
/*
 * Mark the connection unusable; idempotent; returns true for the call that marked it. Wakes
 * nobody: holders see it at their next conn_is_broken check.
 */
bool conn_mark_broken(struct conn *c);
bool conn_is_broken(const struct conn *c);
/* Current reference count (for tests and debugging). */
unsigned conn_refs(const struct conn *c);

#endif
