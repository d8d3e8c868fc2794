/*
 * accept.c: the accept thread (seed 004: the accept path never waits on a client).
 *
 * One thread poll()s the listening socket and an eventfd used to stop it. For each new
 * connection it only does what needs no cooperation from the peer: accept4 (CLOEXEC,
 * non-blocking), SO_PEERCRED against allowed_uids (refused peers are closed at once and
 * logged) and the max_connections bound (an atomic count the loop decrements when a
 * connection closes). It never reads from a client. Accepted fds go on a queue guarded by
 * q_lock and the loop is woken with event_active (libevent is thread-safe after
 * evthread_use_pthreads()); the loop owns an fd from accept_take() on. EMFILE/ENFILE are
 * logged once per episode and answered with a short back-off instead of a busy loop.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shim.h"
#include "util.h"

#define ACCEPT_BACKOFF_MS 100

struct accept_fd {
	int fd;
	struct accept_fd *next;
};

static struct {
	pthread_t thread;
	bool running;
	int listen_fd;
	int stop_efd; /* owned here */
	const struct shim_config *cfg;
	atomic_uint nconns; /* accepted and not yet closed */

	/* q_lock guards head and tail. */
	pthread_mutex_t q_lock;
	struct accept_fd *head, *tail;
} ac = {
    .stop_efd = -1,
    .q_lock = PTHREAD_MUTEX_INITIALIZER,
};

static bool
accept_uid_allowed(uid_t uid)
{
	for (size_t i = 0; i < ac.cfg->n_allowed_uids; i++)
		if (ac.cfg->allowed_uids[i] == uid)
			return true;
	return false;
}

/* Check one new connection; queue it for the loop or close it. */
static void
accept_one(int fd)
{
	struct accept_fd *a;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int r;

	r = transport_peer_cred(fd, &pid, &uid, &gid);
	if (r < 0) {
		log_warn("refused a connection: SO_PEERCRED: %s", strerror(-r));
		close(fd);
		return;
	}
	if (!accept_uid_allowed(uid)) {
		log_warn("refused a connection from pid %ld uid %lu: uid not in allowed_uids",
		    (long)pid, (unsigned long)uid);
		close(fd);
		return;
	}
	if (atomic_load(&ac.nconns) >= ac.cfg->max_connections) {
		log_warn("refused a connection from pid %ld uid %lu: max_connections (%u) reached",
		    (long)pid, (unsigned long)uid, ac.cfg->max_connections);
		close(fd);
		return;
	}
	atomic_fetch_add(&ac.nconns, 1);
	a = xmalloc(sizeof *a);
	a->fd = fd;
	a->next = NULL;
	pthread_mutex_lock(&ac.q_lock);
	if (ac.tail != NULL)
		ac.tail->next = a;
	else
		ac.head = a;
	ac.tail = a;
	pthread_mutex_unlock(&ac.q_lock);
	loop_notify_accept();
}

static void *
accept_main(void *arg)
{
	struct pollfd pfd[2];
	bool exhausted = false;
	int fd;

	pfd[0].fd = ac.listen_fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = ac.stop_efd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return NULL;
		}
		if (pfd[1].revents != 0)
			return NULL;
		for (;;) {
			fd = transport_accept(ac.listen_fd, true);
			if (fd >= 0) {
				exhausted = false;
				accept_one(fd);
				continue;
			}
			if (fd == -EINTR || fd == -ECONNABORTED)
				continue;
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
				/* Out of descriptors: log once, sleep on the stop fd, retry. */
				struct pollfd s = {.fd = ac.stop_efd, .events = POLLIN};

				if (!exhausted)
					log_error("accept: %s: backing off %d ms", strerror(-fd),
					    ACCEPT_BACKOFF_MS);
				exhausted = true;
				if (poll(&s, 1, ACCEPT_BACKOFF_MS) > 0)
					return NULL;
				continue;
			}
			if (fd != -EAGAIN)
				log_warn("accept: %s", strerror(-fd));
			break;
		}
	}
}

int
accept_start(int listen_fd, const struct shim_config *cfg, struct status *st)
{
	int r;

	ac.listen_fd = listen_fd;
	ac.cfg = cfg;
	ac.stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ac.stop_efd < 0)
		return status_errno(st, ST_INTERNAL, errno, "accept: eventfd");
	r = pthread_create(&ac.thread, NULL, accept_main, NULL);
	if (r != 0)
		return status_errno(st, ST_INTERNAL, r, "accept: pthread_create");
	ac.running = true;
	return 0;
}

void
accept_stop(void)
{
	static const uint64_t one = 1;
	int fd;

	if (ac.running) {
		if (write(ac.stop_efd, &one, sizeof one) < 0)
			log_warn("accept: eventfd write: %s", strerror(errno));
		pthread_join(ac.thread, NULL);
		ac.running = false;
	}
	while ((fd = accept_take()) >= 0) {
		close(fd);
		accept_conn_closed();
	}
	if (ac.stop_efd >= 0)
		close(ac.stop_efd);
	ac.stop_efd = -1;
}

int
accept_take(void)
{
	struct accept_fd *a;
	int fd = -1;

	pthread_mutex_lock(&ac.q_lock);
	a = ac.head;
	if (a != NULL) {
		ac.head = a->next;
		if (ac.head == NULL)
			ac.tail = NULL;
	}
	pthread_mutex_unlock(&ac.q_lock);
	if (a != NULL) {
		fd = a->fd;
		free(a);
	}
	return fd;
}

void
accept_conn_closed(void)
{
	atomic_fetch_sub(&ac.nconns, 1);
}
