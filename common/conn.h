/*
 * conn.h: a reference-counted owner of one descriptor (seed 002).
 *
 * Whoever may still use a connection's fd holds a reference; the fd is closed exactly once,
 * by whoever drops the last reference. Marking a connection broken tells every holder to stop
 * using it (their next operation fails) without closing the fd under anyone, so a worker
 * blocked in write() on it never sees EBADF or, worse, a reused fd number. The reference count
 * and the broken flag are atomics; conn is safe to hand between threads. An optional
 * destructor runs at the last unref, before the close, for the owner's per-connection data.
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
/* Mark the connection unusable; idempotent; returns true for the call that marked it. */
bool conn_mark_broken(struct conn *c);
bool conn_is_broken(const struct conn *c);
/* Current reference count (for tests and debugging). */
unsigned conn_refs(const struct conn *c);

#endif
