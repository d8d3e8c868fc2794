/*
 * accept.c: the accept thread (the accept path never waits on a client: docs/CONTRACT.md 5.4).
 *
 * One thread poll()s the listening socket and an eventfd used to stop it. For each new
 * connection it only does what needs no cooperation from the peer: accept4 (CLOEXEC,
 * non-blocking), SO_PEERCRED against allowed_uids (refused peers are closed at once and
 * logged) and the max_connections bound (an atomic count the loop decrements when a
 * connection closes). It never reads from a client. Accepted fds go on a queue guarded by
 * q_lock and the loop is woken through the notify callback it passed to accept_start (it
 * calls event_active, which is thread-safe after evthread_use_pthreads()); the loop owns an
 * fd from accept_take() on.
 *
 * Out of descriptors (EMFILE/ENFILE), the listening socket stays readable while the backlog
 * holds connections we cannot accept, so a naive loop would spin. Instead the thread keeps one
 * spare descriptor (/dev/null): it closes the spare, accepts the waiting connection, closes it
 * at once (the client sees a clean close, not a hang in the backlog) and reopens the spare.
 * Each episode is logged once when it starts and once, with the number refused, when an
 * accept succeeds again. If the spare cannot be had (another thread took the slot), or for
 * ENOBUFS/ENOMEM, the thread sleeps ACCEPT_BACKOFF_MS on the stop eventfd before retrying, so
 * it never burns a core.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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
	int spare_fd; /* /dev/null, given up to refuse a connection on EMFILE; owned here */
	const struct shim_config *cfg;
	void (*notify)(void); /* wakes the loop: an fd is queued */
	atomic_uint nconns;   /* accepted and not yet closed */

	/* q_lock guards head and tail. */
	pthread_mutex_t q_lock;
	struct accept_fd *head, *tail;
} ac = {
    .stop_efd = -1,
    .spare_fd = -1,
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
	ac.notify();
}

static void
accept_spare_open(void)
{
	if (ac.spare_fd < 0)
		ac.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* An out-of-descriptors episode: from the first EMFILE to the next successful accept. */
struct accept_episode {
	bool on;
	unsigned long refused;
};

enum accept_next {
	ACCEPT_AGAIN, /* try accept again at once */
	ACCEPT_POLL,  /* back to poll: it says whether anyone is waiting */
	ACCEPT_STOP,  /* the stop eventfd fired */
};

/*
 * Out of descriptors: refuse one waiting connection through the spare descriptor, or sleep
 * ACCEPT_BACKOFF_MS when that is impossible. Linux reports EMFILE before it looks at the
 * backlog, so an empty backlog shows up here as the spare's accept returning EAGAIN.
 */
static enum accept_next
accept_exhausted(int err, struct accept_episode *ep)
{
	struct pollfd s = {.fd = ac.stop_efd, .events = POLLIN};
	int fd;

	if (!ep->on)
		log_error(
		    "accept: %s: refusing connections until descriptors are free", strerror(err));
	ep->on = true;
	accept_spare_open();
	if ((err == EMFILE || err == ENFILE) && ac.spare_fd >= 0) {
		close(ac.spare_fd);
		ac.spare_fd = -1;
		fd = transport_accept(ac.listen_fd, true);
		accept_spare_open();
		if (fd >= 0) {
			close(fd);
			ep->refused++;
			return ACCEPT_AGAIN;
		}
		if (fd == -EAGAIN)
			return ACCEPT_POLL;
	}
	/* No spare to give up: wait, then let poll say whether anyone is still waiting. */
	return poll(&s, 1, ACCEPT_BACKOFF_MS) > 0 ? ACCEPT_STOP : ACCEPT_POLL;
}

/* The accept thread: poll the listening socket and the stop eventfd; accept and check. */
static void *
accept_main(void *arg)
{
	struct accept_episode ep = {false, 0};
	struct pollfd pfd[2];
	enum accept_next next;
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
			/* A freed slot goes to the spare first, so refusing stays possible. */
			accept_spare_open();
			fd = transport_accept(ac.listen_fd, true);
			if (fd >= 0) {
				if (ep.on)
					log_warn("accept: descriptors available again; %lu "
						 "connection(s) refused meanwhile",
					    ep.refused);
				ep.on = false;
				ep.refused = 0;
				accept_one(fd);
				continue;
			}
			if (fd == -EINTR || fd == -ECONNABORTED)
				continue;
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
				next = accept_exhausted(-fd, &ep);
				if (next == ACCEPT_STOP)
					return NULL;
				if (next == ACCEPT_AGAIN)
					continue;
				break;
			}
			if (fd != -EAGAIN)
				log_warn("accept: %s", strerror(-fd));
			break;
		}
	}
}

int
accept_start(int listen_fd, const struct shim_config *cfg, void (*notify)(void), struct status *st)
{
	int r;

	ac.listen_fd = listen_fd;
	ac.cfg = cfg;
	ac.notify = notify;
	ac.stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ac.stop_efd < 0)
		return status_errno(st, ST_INTERNAL, errno, "accept: eventfd");
	accept_spare_open();
	if (ac.spare_fd < 0)
		return status_errno(st, ST_INTERNAL, errno, "accept: /dev/null");
	r = pthread_create(&ac.thread, NULL, accept_main, NULL);
	if (r != 0)
		return status_errno(st, ST_INTERNAL, r, "accept: pthread_create");
	/* Named from here, before seccomp: tests and ps find it as "vmshim-accept". */
	pthread_setname_np(ac.thread, "vmshim-accept");
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
	if (ac.spare_fd >= 0)
		close(ac.spare_fd);
	ac.spare_fd = -1;
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
