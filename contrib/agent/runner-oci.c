/*
 * runner-oci.c: the `oci` runner, which drives an OCI runtime (runc) with --runtime PATH.
 *
 * Each method of struct runner_ops becomes one or more runtime commands run by ro_run()
 * (runner-oci-run.c), so the loop never waits on runc and one slow container never blocks
 * another. The runtime keeps its state under STATE_DIR/runc (--root); each container gets
 * STATE_DIR/<id>/ (struct ro_container, its runner_data) with its bundle (config.json written
 * from the CreateContainer spec, root.path made absolute: rootfs_mount when given, else
 * relative to the shim's bundle path), pid files and exec process files. The agent is a child
 * subreaper, so the container's processes are reaped by proc-reap.c like any other child.
 *
 * A failed `create` (runtime error or console failure) is undone before it is answered:
 * `delete --force` (runc may have registered the container and started its init), then the
 * container's state directory goes, so the id is free and nothing is left behind.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "runner-oci.h"
#include "util.h"

/* A failed create being undone: `delete --force`, then the answer. */
struct ro_undo {
	struct container *c;
	struct status st; /* the create's own failure, answered at the end */
	runner_cb done;
	void *arg;
};

/* Write a JSON object to a file. */
static int
ro_write_json(const char *path, json_t *j, struct status *st)
{
	if (json_dump_file(j, path, JSON_COMPACT) < 0)
		return status_errno(st, ST_INTERNAL, errno, "write %s", path);
	return 0;
}

/* The undoing `delete --force` of a failed create finished: clean up, answer the failure. */
static void
ro_undo_done(const struct status *st, json_t *result, void *arg)
{
	struct ro_undo *u = arg;
	struct ro_container *rc = u->c->runner_data;

	/* "does not exist" is the usual answer when the runtime cleaned up after itself. */
	if (st->code != ST_OK)
		log_debug_id(u->c->id, NULL, "undo create: %s", st->msg);
	if (rc != NULL)
		nftw(rc->dir, ro_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	u->done(&u->st, NULL, u->arg);
	container_unref(u->c);
	free(u);
}

/* `create` finished: pass a success on; undo a failure first (see the top of the file). */
static void
ro_create_done(const struct status *st, json_t *result, void *arg)
{
	struct ro_undo *u = arg;
	const char *args[4] = {"delete", "--force", u->c->id, NULL};

	if (st->code == ST_OK) {
		u->done(st, result, u->arg);
		container_unref(u->c);
		free(u);
		return;
	}
	u->st = *st;
	ro_run(u->c, NULL, "delete", args, NULL, NULL, false, false, ro_undo_done, u);
}

/* Write the bundle (config.json with an absolute root.path) and run `create`. */
static void
ro_create(struct container *c, json_t *spec, runner_cb done, void *arg)
{
	struct ro_container *rc = xcalloc(1, sizeof *rc);
	cleanup_json json_t *copy = NULL;
	cleanup_free char *cfg = NULL, *rootpath = NULL;
	json_t *root, *process;
	const char *path = "rootfs";
	struct proc *p = c->init;
	struct ro_undo *u;
	const char *args[8];
	char *pid_file;
	struct status st;

	c->runner_data = rc;
	xasprintf(&rc->dir, "%s/%s", agent.state_dir, c->id);
	xasprintf(&rc->bundle, "%s/bundle", rc->dir);
	nftw(rc->dir, ro_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir_p(rc->bundle, 0700) < 0) {
		runner_fail(done, arg, ST_INTERNAL, "mkdir %s: %s", rc->bundle, strerror(errno));
		return;
	}
	copy = json_deep_copy(spec);
	process = json_object_get(copy, "process");
	json_object_set_new(process, "terminal", json_boolean(p->terminal));
	root = json_object_get(copy, "root");
	if (!json_is_object(root)) {
		root = json_object();
		json_object_set_new(copy, "root", root);
	}
	if (json_is_string(json_object_get(root, "path")))
		path = json_string_value(json_object_get(root, "path"));
	if (c->rootfs[0] != '\0')
		rootpath = xstrdup(c->rootfs);
	else if (path[0] == '/')
		rootpath = xstrdup(path);
	else if (c->bundle[0] == '/')
		xasprintf(&rootpath, "%s/%s", c->bundle, path);
	else {
		nftw(rc->dir, ro_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		runner_fail(done, arg, ST_INVALID_ARGUMENT,
		    "payload.bundle: an absolute path is needed for a relative root.path");
		return;
	}
	json_object_set_new(root, "path", json_string(rootpath));
	xasprintf(&cfg, "%s/config.json", rc->bundle);
	if (ro_write_json(cfg, copy, &st) < 0) {
		nftw(rc->dir, ro_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		done(&st, NULL, arg);
		return;
	}
	xasprintf(&pid_file, "%s/init.pid", rc->dir);
	u = xcalloc(1, sizeof *u);
	u->c = c;
	container_ref(c);
	u->done = done;
	u->arg = arg;
	args[0] = "create";
	args[1] = "--bundle";
	args[2] = rc->bundle;
	args[3] = "--pid-file";
	args[4] = pid_file;
	args[5] = c->id;
	args[6] = NULL;
	ro_run(c, p, "create", args, p->terminal ? NULL : p->child_fd, pid_file, false, p->terminal,
	    ro_create_done, u);
	/* runc (and then the container) holds the child ends now. */
	proc_close_child_fds(p);
}

/* `start` for the init; `exec --detach` with a process file for an exec. */
static void
ro_start(struct proc *p, runner_cb done, void *arg)
{
	struct container *c = p->c;
	struct ro_container *rc = c->runner_data;
	cleanup_free char *pfile = NULL;
	const char *args[12];
	char *pid_file;
	struct status st;
	json_t *process;
	size_t n;

	if (p == c->init) {
		args[0] = "start";
		args[1] = c->id;
		args[2] = NULL;
		ro_run(c, p, "start", args, NULL, NULL, false, false, done, arg);
		return;
	}
	xasprintf(&pfile, "%s/exec-%s.json", rc->dir, p->exec_id);
	xasprintf(&pid_file, "%s/exec-%s.pid", rc->dir, p->exec_id);
	process = json_deep_copy(p->process);
	json_object_set_new(process, "terminal", json_boolean(p->terminal));
	if (ro_write_json(pfile, process, &st) < 0) {
		json_decref(process);
		free(pid_file);
		done(&st, NULL, arg);
		return;
	}
	json_decref(process);
	n = 0;
	args[n++] = "exec";
	args[n++] = "--detach";
	if (p->terminal)
		args[n++] = "--tty";
	args[n++] = "--pid-file";
	args[n++] = pid_file;
	args[n++] = "--process";
	args[n++] = pfile;
	args[n++] = c->id;
	args[n] = NULL;
	ro_run(c, p, "exec", args, p->terminal ? NULL : p->child_fd, pid_file, false, p->terminal,
	    done, arg);
	proc_close_child_fds(p);
}

/* kill(2) one process, or `kill --all` for the whole container. */
static void
ro_signal(struct proc *p, int sig, bool all, runner_cb done, void *arg)
{
	char signame[16];
	const char *args[6];

	if (!all || p != p->c->init) {
		if (kill(p->pid, sig) < 0) {
			runner_fail(done, arg, errno == ESRCH ? ST_NOT_FOUND : ST_INTERNAL,
			    "kill %d: %s", (int)p->pid, strerror(errno));
			return;
		}
		runner_ok(done, arg, NULL);
		return;
	}
	snprintf(signame, sizeof signame, "%d", sig);
	args[0] = "kill";
	args[1] = "--all";
	args[2] = p->c->id;
	args[3] = signame;
	args[4] = NULL;
	ro_run(p->c, p, "kill", args, NULL, NULL, false, false, done, arg);
}

static void
ro_pause(struct container *c, bool pause, runner_cb done, void *arg)
{
	const char *args[3] = {pause ? "pause" : "resume", c->id, NULL};

	ro_run(c, NULL, args[0], args, NULL, NULL, false, false, done, arg);
}

/* `update --resources FILE`. */
static void
ro_update(struct container *c, json_t *resources, runner_cb done, void *arg)
{
	struct ro_container *rc = c->runner_data;
	cleanup_free char *file = NULL;
	const char *args[5];
	struct status st;

	xasprintf(&file, "%s/resources.json", rc->dir);
	if (ro_write_json(file, resources, &st) < 0) {
		done(&st, NULL, arg);
		return;
	}
	args[0] = "update";
	args[1] = "--resources";
	args[2] = file;
	args[3] = c->id;
	args[4] = NULL;
	ro_run(c, NULL, "update", args, NULL, NULL, false, false, done, arg);
}

static void
ro_pids(struct container *c, runner_cb done, void *arg)
{
	const char *args[5] = {"ps", "--format", "json", c->id, NULL};

	ro_run(c, NULL, "ps", args, NULL, NULL, true, false, done, arg);
}

/* `runc delete --force` finished: a failure is logged, the container goes anyway. */
static void
ro_remove_done(const struct status *st, json_t *result, void *arg)
{
	struct ro_call *k = arg;
	struct ro_container *rc = k->c->runner_data;

	if (st->code != ST_OK)
		log_warn_id(k->c->id, NULL, "%s", st->msg);
	if (rc != NULL)
		nftw(rc->dir, ro_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	runner_ok(k->done, k->arg, NULL);
	container_unref(k->c);
	free(k);
}

/* Kill the exec processes, then `delete --force` the container. */
static void
ro_remove(struct container *c, runner_cb done, void *arg)
{
	const char *args[4] = {"delete", "--force", c->id, NULL};
	struct ro_call *k = xcalloc(1, sizeof *k);
	struct proc *p;

	/* Exec processes are ours to kill; runc kills the init's pid namespace. */
	TAILQ_FOREACH (p, &c->procs, entry) {
		if (p != c->init && proc_is_live(p))
			kill(p->pid, SIGKILL);
	}
	k->c = c;
	container_ref(c);
	k->done = done;
	k->arg = arg;
	ro_run(c, NULL, "delete", args, NULL, NULL, false, false, ro_remove_done, k);
}

/* Free the per-container paths. */
static void
ro_free_container(struct container *c)
{
	struct ro_container *rc = c->runner_data;

	if (rc == NULL)
		return;
	free(rc->dir);
	free(rc->bundle);
	free(rc);
	c->runner_data = NULL;
}

const struct runner_ops runner_oci_ops = {
    .name = "oci",
    .create = ro_create,
    .start = ro_start,
    .signal = ro_signal,
    .pause = ro_pause,
    .update = ro_update,
    .pids = ro_pids,
    .remove = ro_remove,
    .free_proc = NULL,
    .free_container = ro_free_container,
};
