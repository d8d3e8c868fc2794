/*
 * proc.c: the container and process table, and each process's stdio ends.
 *
 * Owns every struct container and struct proc (reference counted: control requests in flight,
 * runner callbacks and streams hold references; the table holds one until the object is
 * removed; the last unref frees, closing the process's stdio ends). Runs on the loop thread
 * only. proc_new() creates a process's stdio: pipes for the declared streams and /dev/null
 * for the others, or a terminal (the process runner opens it here; under the oci runner runc
 * opens it and the master arrives later). Removing a process tells the observer (control.c's,
 * registered with proc_observe) and orphans its streams through struct proc_stream_ops
 * (stream.c's): the table calls neither directly. The rest of a process's life lives in
 * proc-stdio.c (streams, drain, terminal), proc-reap.c (reaping, pid claims) and
 * proc-helper.c (helper children).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "runner.h"
#include "util.h"

struct proc_container_list proc_containers = TAILQ_HEAD_INITIALIZER(proc_containers);
const struct proc_observer *proc_obs;	    /* control.c's */
const struct proc_stream_ops *proc_streams; /* stream.c's */

void
proc_observe(const struct proc_observer *obs)
{
	proc_obs = obs;
}

void
proc_set_stream_ops(const struct proc_stream_ops *ops)
{
	proc_streams = ops;
}

/* ---- containers ---- */

struct container *
container_find(const char *id)
{
	struct container *c;

	TAILQ_FOREACH (c, &proc_containers, entry) {
		if (strcmp(c->id, id) == 0)
			return c;
	}
	return NULL;
}

/* A new container in the table, holding the table's reference. */
struct container *
container_new(const char *id, const char *bundle)
{
	struct container *c = xcalloc(1, sizeof *c);

	c->id = xstrdup(id);
	c->bundle = xstrdup(bundle != NULL ? bundle : "");
	c->rootfs = xstrdup("");
	TAILQ_INIT(&c->procs);
	c->refs = 1;
	TAILQ_INSERT_TAIL(&proc_containers, c, entry);
	return c;
}

void
container_ref(struct container *c)
{
	c->refs++;
}

/* Drop a reference; the last one frees the runner data and the container. */
void
container_unref(struct container *c)
{
	if (c == NULL || --c->refs > 0)
		return;
	if (agent.runner->free_container != NULL)
		agent.runner->free_container(c);
	guest_env_teardown(c);
	rootfs_unmount(c);
	free(c->id);
	free(c->bundle);
	free(c->rootfs);
	free(c->oom_file);
	free(c);
}

/* Take the container out of the table; its processes are removed with it. */
void
container_remove(struct container *c)
{
	struct proc *p;

	if (c->deleted)
		return;
	c->deleted = true;
	while ((p = TAILQ_FIRST(&c->procs)) != NULL)
		proc_remove(p);
	c->init = NULL;
	TAILQ_REMOVE(&proc_containers, c, entry);
	container_unref(c);
}

/* ---- processes ---- */

struct proc *
proc_find(struct container *c, const char *exec_id)
{
	struct proc *p;

	TAILQ_FOREACH (p, &c->procs, entry) {
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	}
	return NULL;
}

bool
proc_is_live(const struct proc *p)
{
	return p->pid > 0 && p->state != PROC_EXITED && p->state != PROC_STOPPED;
}

struct proc *
proc_find_pid(pid_t pid)
{
	struct container *c;
	struct proc *p;

	TAILQ_FOREACH (c, &proc_containers, entry) {
		TAILQ_FOREACH (p, &c->procs, entry) {
			if (p->pid == pid && proc_is_live(p))
				return p;
		}
	}
	return NULL;
}

void
proc_close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Create the terminal: the master stays in the agent, the slave goes to the child. */
static int
proc_open_pty(struct proc *p, struct status *st)
{
	char name[128];
	int fd;

	p->pty_master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (p->pty_master < 0)
		return status_errno(st, ST_INTERNAL, errno, "posix_openpt");
	if (grantpt(p->pty_master) < 0 || unlockpt(p->pty_master) < 0 ||
	    ptsname_r(p->pty_master, name, sizeof name) != 0)
		return status_errno(st, ST_INTERNAL, errno, "pty setup");
	fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return status_errno(st, ST_INTERNAL, errno, "open %s", name);
	p->pty_slave = fd;
	fd_set_nonblock(p->pty_master, true);
	return 0;
}

/* Create one stdio: a pipe when declared, else /dev/null. */
static int
proc_open_stdio(struct proc *p, enum stdio_kind k, struct status *st)
{
	int fds[2];

	if (!p->declared[k]) {
		p->child_fd[k] = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (p->child_fd[k] < 0)
			return status_errno(st, ST_INTERNAL, errno, "open /dev/null");
		return 0;
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		return status_errno(st, ST_INTERNAL, errno, "pipe");
	if (k == STDIO_IN) {
		p->child_fd[k] = fds[0];
		p->parent_fd[k] = fds[1];
	} else {
		p->child_fd[k] = fds[1];
		p->parent_fd[k] = fds[0];
	}
	fd_set_nonblock(p->parent_fd[k], true);
	return 0;
}

/* Allocate a process in c (the init when exec_id is "") with its stdio; NULL with *st. */
struct proc *
proc_new(struct container *c, const char *exec_id, json_t *process, bool terminal,
    const bool declared[STDIO_N], struct status *st)
{
	struct proc *p = xcalloc(1, sizeof *p);
	int k;

	p->c = c;
	container_ref(c);
	p->exec_id = xstrdup(exec_id);
	p->process = json_incref(process);
	p->terminal = terminal;
	p->pty_master = p->pty_slave = -1;
	p->refs = 1;
	for (k = 0; k < STDIO_N; k++) {
		p->parent_fd[k] = p->child_fd[k] = -1;
		p->declared[k] = declared[k];
	}
	if (terminal && agent.runner == &runner_oci_ops) {
		/* runc allocates the pty in the container: proc_set_pty_master() brings it. */
		p->declared[STDIO_ERR] = false;
	} else if (terminal) {
		/* The pty merges stdout and stderr: there is no stderr stream. */
		p->declared[STDIO_ERR] = false;
		if (proc_open_pty(p, st) < 0)
			goto fail;
		for (k = 0; k < STDIO_N; k++) {
			p->child_fd[k] = dup(p->pty_slave);
			if (p->child_fd[k] < 0) {
				status_errno(st, ST_INTERNAL, errno, "dup");
				goto fail;
			}
			fd_set_cloexec(p->child_fd[k]);
		}
	} else {
		for (k = 0; k < STDIO_N; k++) {
			if (proc_open_stdio(p, k, st) < 0)
				goto fail;
		}
	}
	TAILQ_INSERT_TAIL(&c->procs, p, entry);
	if (exec_id[0] == '\0')
		c->init = p;
	return p;
fail:
	p->deleted = true;
	proc_unref(p);
	return NULL;
}

void
proc_ref(struct proc *p)
{
	p->refs++;
}

/* Drop a reference; the last one closes the stdio ends and frees the process. */
void
proc_unref(struct proc *p)
{
	int k;

	if (p == NULL || --p->refs > 0)
		return;
	if (agent.runner->free_proc != NULL)
		agent.runner->free_proc(p);
	for (k = 0; k < STDIO_N; k++) {
		proc_close_fd(&p->parent_fd[k]);
		proc_close_fd(&p->child_fd[k]);
	}
	proc_close_fd(&p->pty_master);
	proc_close_fd(&p->pty_slave);
	if (p->start_timer != NULL)
		event_free(p->start_timer);
	if (p->grace_timer != NULL)
		event_free(p->grace_timer);
	json_decref(p->process);
	container_unref(p->c);
	free(p->exec_id);
	free(p);
}

/* Take the process out of its container; streams finish on their own. */
void
proc_remove(struct proc *p)
{
	int k;

	if (p->deleted)
		return;
	p->deleted = true;
	proc_obs->removed(p);
	for (k = 0; k < STDIO_N; k++) {
		if (p->streams[k] != NULL) {
			proc_streams->orphan(p->streams[k]);
			p->streams[k] = NULL;
		}
	}
	if (p->grace_timer != NULL)
		evtimer_del(p->grace_timer);
	proc_claim_end(p);
	TAILQ_REMOVE(&p->c->procs, p, entry);
	if (p->c->init == p)
		p->c->init = NULL;
	proc_unref(p);
}

void
proc_close_child_fds(struct proc *p)
{
	int k;

	for (k = 0; k < STDIO_N; k++)
		proc_close_fd(&p->child_fd[k]);
	proc_close_fd(&p->pty_slave);
}

/* ---- helpers ---- */

/* ---- reaping ---- */
