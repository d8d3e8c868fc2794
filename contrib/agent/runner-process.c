/*
 * runner-process.c: the `process` runner, which forks the workload itself.
 *
 * Runs on the loop thread and never blocks: fork() returns at once and the child waits for the
 * start signal on a CLOEXEC pipe (the init process is forked by CreateContainer so its pid
 * exists before StartProcess; an exec process is forked by StartProcess). In the child: a new
 * session (setsid; with a terminal, the pty slave becomes the controlling tty), stdio dup2'd
 * from the process's pipes, and only after the start byte: chroot into the container's root
 * when it has one in a real guest (the block rootfs the agent mounted), chdir, the OCI user (as
 * root: setgroups(additionalGids), setgid, setuid whenever process.user is given; an agent that is
 * not root refuses a user it cannot become, except that the local VM maps uid 0 to its own
 * user, as rootless containers do), execvp. A failure in the child after the start is
 * written as {stage, errno} on a CLOEXEC status pipe that the loop watches, so StartProcess
 * fails with "exec: ENOENT ..." rather than a silent exit 127. Per-process data (struct
 * rp_proc) is owned by the struct proc (runner_data) and freed by free_proc.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "msg.h"
#include "runner.h"
#include "util.h"

extern char **environ;

enum rp_stage {
	RP_STAGE_CHDIR = 1,
	RP_STAGE_USER = 2,
	RP_STAGE_EXEC = 3,
	RP_STAGE_ROOT = 4,
};

struct rp_report {
	int stage;
	int err;
};

struct rp_proc {
	int start_fd;  /* parent: write end of the start pipe */
	int status_fd; /* parent: read end of the status pipe */
	struct event *status_ev;
	runner_cb done;
	void *arg;
	char **argv;
	char **envp;
	char *cwd;
	bool set_user; /* setgroups + setgid + setuid in the child */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t ngroups;
};

/* Parse the OCI process object into argv/envp/cwd/user. */
static int
rp_parse(struct rp_proc *r, json_t *process, struct status *st)
{
	json_t *args = NULL, *env = NULL, *user = NULL, *groups = NULL;
	const char *cwd = "/";
	uint32_t uid = 0, gid = 0;
	size_t i;

	if (process == NULL || !json_is_object(process))
		return status_set(st, ST_INVALID_ARGUMENT, "process: expected object");
	if (msg_get_array(process, "process", "args", true, &args, st) < 0 ||
	    msg_get_array(process, "process", "env", false, &env, st) < 0 ||
	    msg_get_string(process, "process", "cwd", false, &cwd, st) < 0 ||
	    msg_get_object(process, "process", "user", false, &user, st) < 0)
		return -1;
	if (json_array_size(args) == 0)
		return status_set(st, ST_INVALID_ARGUMENT, "process.args: empty");
	if (runner_strv_from_json(args, "process.args", &r->argv, st) < 0)
		return -1;
	if (env != NULL) {
		if (runner_strv_from_json(env, "process.env", &r->envp, st) < 0)
			return -1;
	} else {
		r->envp = xcalloc(2, sizeof(char *));
		r->envp[0] =
		    xstrdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	}
	r->cwd = xstrdup(cwd[0] != '\0' ? cwd : "/");
	if (user != NULL) {
		if (msg_get_u32(user, "process.user", "uid", false, &uid, st) < 0 ||
		    msg_get_u32(user, "process.user", "gid", false, &gid, st) < 0 ||
		    msg_get_array(user, "process.user", "additionalGids", false, &groups, st) < 0)
			return -1;
		r->ngroups = json_array_size(groups);
		r->groups = xcalloc(r->ngroups + 1, sizeof(gid_t));
		for (i = 0; i < r->ngroups; i++) {
			json_t *g = json_array_get(groups, i);
			if (!json_is_integer(g) || json_integer_value(g) < 0 ||
			    json_integer_value(g) > UINT32_MAX)
				return status_set(st, ST_INVALID_ARGUMENT,
				    "process.user.additionalGids[%zu]: expected u32", i);
			r->groups[i] = (gid_t)json_integer_value(g);
		}
	}
	r->uid = uid;
	r->gid = gid;
	if (user == NULL)
		return 0;
	if (geteuid() == 0) {
		r->set_user = true;
		return 0;
	}
	if (uid == geteuid() && gid == getegid() && r->ngroups == 0)
		return 0;
	if (agent.local_vm && uid == 0 && gid == 0 && r->ngroups == 0)
		return 0; /* rootless local VM: "root" is the agent's own user */
	return status_set(st, ST_FAILED_PRECONDITION,
	    "process.user %u:%u (%zu additional groups): the agent runs as uid %u and cannot "
	    "switch users",
	    uid, gid, r->ngroups, (unsigned)geteuid());
}

/* Report a failure from the child and exit 127. */
static void __attribute__((noreturn)) rp_child_fail(int fd, int stage, int err)
{
	struct rp_report rep = {stage, err};
	ssize_t n __attribute__((unused));

	n = write(fd, &rep, sizeof rep);
	_exit(127);
}

/*
 * The child: set up stdio and session, keep only stdio and its two pipes (a child waiting for
 * its start must not hold copies of the agent's sockets), wait for the start byte, then exec.
 */
static void __attribute__((noreturn))
rp_child(struct proc *p, struct rp_proc *r, int start_rd, int status_wr)
{
	int fds[STDIO_N], k, hs, hw;
	char c;
	ssize_t n;

	proc_child_reset_signals();
	setsid();
	if (p->terminal && p->child_fd[0] >= 0)
		ioctl(p->child_fd[0], TIOCSCTTY, 0);
	for (k = 0; k < STDIO_N; k++)
		fds[k] = fcntl(p->child_fd[k], F_DUPFD_CLOEXEC, 100);
	hs = fcntl(start_rd, F_DUPFD_CLOEXEC, 100);
	hw = fcntl(status_wr, F_DUPFD_CLOEXEC, 100);
	for (k = 0; k < STDIO_N; k++) {
		if (fds[k] < 0 || dup2(fds[k], k) < 0)
			_exit(126);
	}
	if (hs < 0 || hw < 0 || dup3(hs, 3, O_CLOEXEC) < 0 || dup3(hw, 4, O_CLOEXEC) < 0)
		_exit(126);
	start_rd = 3;
	status_wr = 4;
	close_range(5, ~0U, 0);
	do {
		n = read(start_rd, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(1); /* deleted before start */
	close(start_rd);
	/* In a real guest, a container with a root of its own (a mounted block rootfs) runs in it.
	 */
	if (!agent.local_vm && p->c->rootfs[0] != '\0' && chroot(p->c->rootfs) < 0)
		rp_child_fail(status_wr, RP_STAGE_ROOT, errno);
	if (chdir(r->cwd) < 0)
		rp_child_fail(status_wr, RP_STAGE_CHDIR, errno);
	if (r->set_user) {
		if (setgroups(r->ngroups, r->groups) < 0 || setgid(r->gid) < 0 ||
		    setuid(r->uid) < 0)
			rp_child_fail(status_wr, RP_STAGE_USER, errno);
	}
	environ = r->envp;
	execvp(r->argv[0], r->argv);
	rp_child_fail(status_wr, RP_STAGE_EXEC, errno);
}

/* Fork the process; it waits for the start byte. */
static int
rp_fork(struct proc *p, struct status *st)
{
	struct rp_proc *r = p->runner_data;
	int start[2], status[2];
	pid_t pid;

	if (pipe2(start, O_CLOEXEC) < 0)
		return status_errno(st, ST_INTERNAL, errno, "pipe");
	if (pipe2(status, O_CLOEXEC) < 0) {
		close(start[0]);
		close(start[1]);
		return status_errno(st, ST_INTERNAL, errno, "pipe");
	}
	pid = fork();
	if (pid < 0) {
		close(start[0]);
		close(start[1]);
		close(status[0]);
		close(status[1]);
		return status_errno(st, ST_INTERNAL, errno, "fork");
	}
	if (pid == 0)
		rp_child(p, r, start[0], status[1]);
	close(start[0]);
	close(status[1]);
	r->start_fd = start[1];
	r->status_fd = status[0];
	proc_close_child_fds(p);
	proc_set_pid(p, pid);
	guest_env_join(p->c, pid); /* before the start byte lets it exec */
	log_debug_id(p->c->id, p->exec_id, "forked pid %d (%s)", (int)pid, r->argv[0]);
	return 0;
}

static void rp_free_proc(struct proc *p);

/* Allocate and parse the runner data of a process. */
static int
rp_prepare(struct proc *p, struct status *st)
{
	struct rp_proc *r;

	if (p->runner_data != NULL)
		return 0;
	r = xcalloc(1, sizeof *r);
	r->start_fd = r->status_fd = -1;
	p->runner_data = r;
	if (rp_parse(r, p->process, st) < 0) {
		/* Half-parsed data must not serve a retried start: parse (and fail) again. */
		rp_free_proc(p);
		return -1;
	}
	return 0;
}

/* Fork the init process now, so its pid exists; it waits for its start byte. */
static void
rp_create(struct container *c, json_t *spec, runner_cb done, void *arg)
{
	struct proc *p = c->init;
	struct status st;

	if (rp_prepare(p, &st) < 0 || (!agent.local_vm && guest_env_setup(c, spec, &st) < 0) ||
	    rp_fork(p, &st) < 0) {
		done(&st, NULL, arg);
		return;
	}
	runner_ok(done, arg, NULL);
}

/* The status pipe: EOF means exec succeeded; a report means the child failed. */
static void
rp_status_cb(evutil_socket_t fd, short what, void *arg)
{
	static const char *stages[] = {"", "chdir", "set user", "exec", "chroot"};
	struct proc *p = arg;
	struct rp_proc *r = p->runner_data;
	struct rp_report rep;
	runner_cb done = r->done;
	void *darg = r->arg;
	const char *name;
	ssize_t n;

	n = read(fd, &rep, sizeof rep);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	event_free(r->status_ev);
	r->status_ev = NULL;
	close(r->status_fd);
	r->status_fd = -1;
	r->done = NULL;
	if (n == (ssize_t)sizeof rep) {
		name = strerrorname_np(rep.err);
		const char *subject = rep.stage == RP_STAGE_CHDIR  ? r->cwd
				      : rep.stage == RP_STAGE_ROOT ? p->c->rootfs
								   : r->argv[0];

		log_error_id(p->c->id, p->exec_id, "%s %.*s: %s", stages[rep.stage % 5],
		    LOG_STR_MAX, subject, strerror(rep.err));
		runner_fail(done, darg, ST_INTERNAL, "%s %.*s: %s (%s)", stages[rep.stage % 5],
		    LOG_STR_MAX, subject, name != NULL ? name : "?", strerror(rep.err));
	} else {
		runner_ok(done, darg, NULL);
	}
	proc_unref(p);
}

/* Fork an exec process if needed, send the start byte, and watch the status pipe. */
static void
rp_start(struct proc *p, runner_cb done, void *arg)
{
	struct rp_proc *r;
	struct status st;
	char c = 'S';

	if (rp_prepare(p, &st) < 0) {
		done(&st, NULL, arg);
		return;
	}
	r = p->runner_data;
	if (p->pid <= 0 && rp_fork(p, &st) < 0) {
		done(&st, NULL, arg);
		return;
	}
	if (write(r->start_fd, &c, 1) != 1) {
		runner_fail(
		    done, arg, ST_INTERNAL, "start pid %d: %s", (int)p->pid, strerror(errno));
		return;
	}
	close(r->start_fd);
	r->start_fd = -1;
	r->done = done;
	r->arg = arg;
	fd_set_nonblock(r->status_fd, true);
	proc_ref(p);
	r->status_ev = event_new(agent.base, r->status_fd, EV_READ | EV_PERSIST, rp_status_cb, p);
	event_add(r->status_ev, NULL);
}

/* kill(2) the process, or its process group with all. */
static void
rp_signal(struct proc *p, int sig, bool all, runner_cb done, void *arg)
{
	int r = all ? kill(-p->pid, sig) : kill(p->pid, sig);

	if (r < 0 && all)
		r = kill(p->pid, sig);
	if (r < 0) {
		runner_fail(done, arg, errno == ESRCH ? ST_NOT_FOUND : ST_INTERNAL, "kill %d: %s",
		    (int)p->pid, strerror(errno));
		return;
	}
	runner_ok(done, arg, NULL);
}

/* SIGSTOP / SIGCONT every live process group of the container. */
static void
rp_pause(struct container *c, bool pause, runner_cb done, void *arg)
{
	struct proc *p;

	TAILQ_FOREACH (p, &c->procs, entry) {
		if (p->pid > 0 && (p->state == PROC_RUNNING || p->state == PROC_CREATED))
			kill(-p->pid, pause ? SIGSTOP : SIGCONT);
	}
	runner_ok(done, arg, NULL);
}

static void
rp_update(struct container *c, json_t *resources, runner_cb done, void *arg)
{
	struct status st;

	if (c->cgroup == NULL) {
		log_info_id(c->id, NULL, "process runner: resource update ignored (no cgroup)");
		runner_ok(done, arg, NULL);
	} else if (guest_env_update(c, resources, &st) < 0) {
		done(&st, NULL, arg);
	} else {
		runner_ok(done, arg, NULL);
	}
}

/* The pids of the container's live processes. */
static void
rp_pids(struct container *c, runner_cb done, void *arg)
{
	json_t *arr = json_array();
	struct proc *p;

	TAILQ_FOREACH (p, &c->procs, entry) {
		if (proc_is_live(p))
			json_array_append_new(arr, json_integer(p->pid));
	}
	runner_ok(done, arg, arr);
	json_decref(arr);
}

/*
 * Release never-started processes and SIGKILL every live one. A child waiting for its start
 * byte exits when its start pipe closes, unless it is stopped (SIGSTOP from anyone): it is
 * killed as well, so nothing the container forked outlives its DeleteProcess.
 */
static void
rp_remove(struct container *c, runner_cb done, void *arg)
{
	struct rp_proc *r;
	struct proc *p;

	TAILQ_FOREACH (p, &c->procs, entry) {
		r = p->runner_data;
		if (r != NULL && r->start_fd >= 0) {
			close(r->start_fd);
			r->start_fd = -1;
		}
		if (proc_is_live(p) && kill(-p->pid, SIGKILL) < 0)
			kill(p->pid, SIGKILL);
	}
	runner_ok(done, arg, NULL);
}

/* Free the runner data of a process (pipes, event, argv, envp). */
static void
rp_free_proc(struct proc *p)
{
	struct rp_proc *r = p->runner_data;

	if (r == NULL)
		return;
	if (r->status_ev != NULL)
		event_free(r->status_ev);
	if (r->start_fd >= 0)
		close(r->start_fd);
	if (r->status_fd >= 0)
		close(r->status_fd);
	runner_strv_free(r->argv);
	runner_strv_free(r->envp);
	free(r->cwd);
	free(r->groups);
	free(r);
	p->runner_data = NULL;
}

const struct runner_ops runner_process_ops = {
    .name = "process",
    .create = rp_create,
    .start = rp_start,
    .signal = rp_signal,
    .pause = rp_pause,
    .update = rp_update,
    .pids = rp_pids,
    .remove = rp_remove,
    .free_proc = rp_free_proc,
    .free_container = NULL,
};
