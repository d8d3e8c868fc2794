/*
 * proc-reap.c: reaping children and claiming pids a runner helper reports late.
 *
 * Runs on the loop thread. Children are reaped through a signalfd for SIGCHLD (main() blocks
 * SIGCHLD before any thread exists) with waitpid(-1) in a loop, and the agent is a child
 * subreaper, so processes started by runc, and orphans of the workload, are reaped too: no
 * zombie is left. A reaped pid goes to its process (proc_on_exit: the exit is recorded, stdin
 * ended, and the exit published once output drained, proc-stdio.c), else to a helper child
 * (proc-helper.c), else it is an orphan. A pid reaped before anyone claimed it (an exec that
 * exits before `runc exec` wrote its pid file) is remembered in a small ring, but only while
 * such a claim is pending (proc_claim_begin/end): a pid the kernel reuses later must never
 * inherit an old orphan's exit. The process runner knows its pid from fork() and never looks
 * at the ring. A process reaped while its output is still owed is announced at once (the
 * observer's exit_pending: the PROTOCOL_TOPIC_EXIT_PENDING event), so the shim can bound how
 * long a host side that nobody reads may hold the output back.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "util.h"

#define PROC_UNCLAIMED_MAX 128

struct proc_unclaimed {
	pid_t pid; /* 0: free slot */
	int wstatus;
	uint64_t seq; /* proc_reap_seq when it was reaped */
};

static struct proc_unclaimed proc_unclaimed[PROC_UNCLAIMED_MAX];
static unsigned proc_unclaimed_next;
static uint64_t proc_reap_seq; /* children reaped so far */
static unsigned proc_claims;   /* processes with a pending claim */
static int proc_sigfd = -1;
static struct event *proc_sigev;

static void proc_on_exit(struct proc *p, int wstatus);

/* Deliver an exit reaped before the pid was known (deferred to a fresh loop turn). */
static void
proc_unclaimed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;

	if (!p->deleted && proc_is_live(p))
		proc_on_exit(p, p->unclaimed_wstatus);
	proc_unref(p);
}

void
proc_claim_begin(struct proc *p)
{
	if (p->claiming)
		return;
	p->claiming = true;
	p->claim_seq = proc_reap_seq;
	proc_claims++;
}

/* The claim is over: forget every unclaimed pid that no pending claim can still want. */
void
proc_claim_end(struct proc *p)
{
	uint64_t oldest = UINT64_MAX;
	struct container *c;
	struct proc *q;
	unsigned i;

	if (!p->claiming)
		return;
	p->claiming = false;
	proc_claims--;
	TAILQ_FOREACH (c, &proc_containers, entry) {
		TAILQ_FOREACH (q, &c->procs, entry) {
			if (q->claiming && q->claim_seq < oldest)
				oldest = q->claim_seq;
		}
	}
	for (i = 0; i < PROC_UNCLAIMED_MAX; i++) {
		if (proc_unclaimed[i].pid != 0 && proc_unclaimed[i].seq <= oldest)
			proc_unclaimed[i].pid = 0;
	}
}

void
proc_set_pid(struct proc *p, pid_t pid)
{
	unsigned i;

	p->pid = pid;
	if (!p->claiming)
		return; /* forked by us: the pid is ours, no stale entry may match it */
	for (i = 0; i < PROC_UNCLAIMED_MAX; i++) {
		if (proc_unclaimed[i].pid == pid && proc_unclaimed[i].seq > p->claim_seq) {
			proc_unclaimed[i].pid = 0;
			p->unclaimed_wstatus = proc_unclaimed[i].wstatus;
			proc_ref(p);
			event_base_once(agent.base, -1, EV_TIMEOUT, proc_unclaimed_cb, p, NULL);
			return;
		}
	}
}

int
proc_wait_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 255;
}

/* The process was reaped: record it, end its stdin, and publish once output drained. */
static void
proc_on_exit(struct proc *p, int wstatus)
{
	int k;

	p->state = PROC_EXITED;
	p->drain_since_ms = -1;
	p->drain_used_ms = 0;
	p->exit_status = proc_wait_status(wstatus);
	clock_gettime(CLOCK_REALTIME, &p->exited_at);
	log_debug_id(
	    p->c->id, p->exec_id, "pid %d exited with status %d", (int)p->pid, p->exit_status);
	if (p->streams[STDIO_IN] != NULL)
		proc_streams->close_input(p->streams[STDIO_IN]);
	proc_close_fd(&p->parent_fd[STDIO_IN]);
	for (k = STDIO_OUT; k <= STDIO_ERR; k++) {
		/* A declared stream that never attached has no reader: nothing to wait for. */
		if (p->declared[k] && p->streams[k] == NULL) {
			p->out_done[k] = true;
			proc_close_fd(&p->parent_fd[k]);
		}
	}
	proc_check_done(p);
	/* Output still owed to the shim: say so now, the exit itself waits for it. */
	if (p->state == PROC_EXITED && !p->deleted)
		proc_obs->exit_pending(p);
	proc_grace_update(p);
}

/* Dispatch one reaped child: a workload process, a helper, or an orphan. */
static void
proc_reaped(pid_t pid, int wstatus)
{
	struct proc *p;

	proc_reap_seq++;
	p = proc_find_pid(pid);
	if (p != NULL) {
		proc_ref(p);
		proc_on_exit(p, wstatus);
		proc_unref(p);
		return;
	}
	if (proc_helper_reaped(pid, wstatus))
		return;
	if (proc_claims == 0) {
		/* An orphan of a workload, re-parented to us as the subreaper. */
		log_debug("reaped orphan pid %d (status %d)", (int)pid, proc_wait_status(wstatus));
		return;
	}
	log_debug("reaped pid %d (status %d) that no one claimed yet", (int)pid,
	    proc_wait_status(wstatus));
	proc_unclaimed[proc_unclaimed_next].pid = pid;
	proc_unclaimed[proc_unclaimed_next].wstatus = wstatus;
	proc_unclaimed[proc_unclaimed_next].seq = proc_reap_seq;
	proc_unclaimed_next = (proc_unclaimed_next + 1) % PROC_UNCLAIMED_MAX;
}

/* Reap every child that has exited. */
static void
proc_reap_all(void)
{
	int wstatus;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &wstatus, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		proc_reaped(pid, wstatus);
	}
}

/* SIGCHLD: drain the signalfd, then reap. */
static void
proc_sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si[16];

	while (read(fd, si, sizeof si) > 0)
		;
	proc_reap_all();
}

/* Become the subreaper and reap through a signalfd for SIGCHLD. */
int
proc_init(struct status *st)
{
	sigset_t set;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	proc_sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (proc_sigfd < 0)
		return status_errno(st, ST_INTERNAL, errno, "signalfd");
	proc_sigev = event_new(agent.base, proc_sigfd, EV_READ | EV_PERSIST, proc_sigchld_cb, NULL);
	event_add(proc_sigev, NULL);
	/* Children may have exited before the signalfd existed. */
	proc_reap_all();
	return 0;
}

/*
 * SIGKILL every live process group (SIGKILL ends a process stopped by SIGSTOP too) and reap
 * until the deadline. A reaped leader's group is left alone: its pid may be reused.
 */
void
proc_kill_all(int timeout_ms)
{
	struct container *c;
	struct proc *p;
	int64_t deadline = time_mono_ms() + timeout_ms;
	int wstatus;
	pid_t pid;

	TAILQ_FOREACH (c, &proc_containers, entry) {
		TAILQ_FOREACH (p, &c->procs, entry) {
			if (!proc_is_live(p))
				continue;
			if (kill(-p->pid, SIGKILL) < 0)
				kill(p->pid, SIGKILL);
		}
	}
	/* Reap what we can within the deadline; the kernel re-parents the rest. */
	while (time_mono_ms() < deadline) {
		pid = waitpid(-1, &wstatus, WNOHANG);
		if (pid > 0)
			continue;
		if (pid < 0 && errno != EINTR)
			break;
		usleep(10000);
	}
}

/* Remove every container, drop the helpers, close the signalfd. */
void
proc_shutdown(void)
{
	struct container *c;

	while ((c = TAILQ_FIRST(&proc_containers)) != NULL)
		container_remove(c);
	proc_helper_free_all();
	if (proc_sigev != NULL)
		event_free(proc_sigev);
	if (proc_sigfd >= 0)
		close(proc_sigfd);
	proc_sigev = NULL;
	proc_sigfd = -1;
}
