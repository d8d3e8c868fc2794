/*
 * task-lifecycle.c: Create, Start, Exec and Delete.
 *
 * Each method validates its payload on the loop thread (errors name the field), marks the
 * process in the table, and hands a self-contained job to a worker: reading the bundle,
 * agent calls and io_prepare() block, so they never run on the loop. The job's completion
 * runs on the loop thread, looks the process up again by id, starts the stdio bridge
 * (io_start), updates the table, publishes the event and answers. A job owns its copies of
 * every string and JSON value it uses; its completion frees the job.
 *
 * Bring-up order for a process: the agent's CreateContainer/ExecProcess first (declaring which
 * streams will attach: the agent only accepts streams of processes it knows), then
 * io_prepare() attaches them; a failure after CreateContainer deletes the process in the
 * agent again so nothing is left behind.
 *
 * A container's bring-up (task_create_run) is a bring-up job (worker_submit_bringup: at most
 * workers - 1 of them run at once) and runs between vm_bringup_begin and vm_bringup_end, which
 * hold the per-VM lock when vm.confidential is set (docs/CONTRACT.md 5.3): the block
 * rootfs, if any (vm_disk_attach, then the agent's MountDisk: task_bringup_disks), the agent's
 * CreateContainer, the stream attach. Any failure after the hot-add undoes it before the lock
 * is released (UnmountDisk if mounted, vm_disk_detach), so a failed Create leaves nothing
 * attached; the status names the failed step, and a failed undo is appended to it. Exec adds
 * a process to a running container (no device, no mount), so it does not take the lock.
 *
 * Block rootfs convention: one rootfs[] entry of type "block" per container; source is the
 * image file or block device; target (absolute) is where the guest mounts it, by default
 * /run/vmshim/<id>/rootfs; options are mount(8) words passed to MountDisk, except "fstype=NAME"
 * (the filesystem, default ext4), and "ro" also attaches the disk read-only. When the agent
 * mounted the disk, CreateContainer gets the target as rootfs_mount; when it did not (the local
 * VM answers "mount skipped"), the container keeps its bundle's root.
 *
 * Delete of an init process whose container has a disk (a bring-up job, under the lock in
 * confidential VMs, since unplugging is a device operation into the guest) unmounts it in the
 * agent and removes it (device_del, DEVICE_DELETED up to vm.unplug_timeout_ms, blockdev-del).
 * A device the guest never releases is logged at error level and the Delete still answers OK,
 * so containerd can clean up; vm-disk.c keeps that port out of use.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "shim.h"
#include "util.h"

#define TASK_BUNDLE_MAX	     (4u << 20) /* bytes of a bundle's config.json */
#define TASK_DISK_TARGET_FMT "/run/vmshim/%s/rootfs"

/* The stdio fields shared by Create and Exec. */
struct task_stdio {
	bool terminal;
	const char *in, *out, *err;
};

static int
task_get_stdio(json_t *pl, struct task_stdio *s, struct status *st)
{
	s->terminal = false;
	s->in = s->out = s->err = "";
	if (msg_get_bool(pl, "payload", "terminal", false, &s->terminal, st) < 0 ||
	    msg_get_string(pl, "payload", "stdin", false, &s->in, st) < 0 ||
	    msg_get_string(pl, "payload", "stdout", false, &s->out, st) < 0 ||
	    msg_get_string(pl, "payload", "stderr", false, &s->err, st) < 0)
		return -1;
	return 0;
}

static void
task_proc_set_stdio(struct task_proc *p, const struct task_stdio *s)
{
	p->terminal = s->terminal;
	free(p->stdin_path);
	free(p->stdout_path);
	free(p->stderr_path);
	p->stdin_path = xstrdup(s->in);
	p->stdout_path = xstrdup(s->out);
	p->stderr_path = xstrdup(s->err);
}

/* A container's block rootfs (docs/CONTRACT.md 4, Create), parsed from its rootfs[] entry on the
 * loop thread. */
struct task_disk {
	char *source; /* NULL: the container has no block rootfs */
	char *target;
	char *fstype;
	json_t *options; /* mount(8) words for the agent, without fstype= */
	bool readonly;
};

static void
task_disk_clear(struct task_disk *d)
{
	free(d->source);
	free(d->target);
	free(d->fstype);
	json_decref(d->options);
	memset(d, 0, sizeof *d);
}

/*
 * Find the block entry of rootfs (already checked for types by task_create): 0 with
 * d->source NULL when there is none, 0 with *d filled, or -1 with *st naming the field.
 */
static int
task_disk_parse(json_t *rootfs, const char *id, struct task_disk *d, struct status *st)
{
	size_t i, k;
	json_t *m, *o;

	memset(d, 0, sizeof *d);
	json_array_foreach (rootfs, i, m) {
		const char *type = json_string_value(json_object_get(m, "type"));
		const char *source = json_string_value(json_object_get(m, "source"));
		const char *target = json_string_value(json_object_get(m, "target"));

		if (type == NULL || strcmp(type, "block") != 0)
			continue;
		if (d->source != NULL) {
			task_disk_clear(d);
			return status_set(st, ST_INVALID_ARGUMENT,
			    "payload.rootfs[%zu]: only one block rootfs per container", i);
		}
		if (source == NULL || *source == '\0')
			return status_set(st, ST_INVALID_ARGUMENT,
			    "payload.rootfs[%zu].source: required for type block", i);
		if (target != NULL && *target != '\0' && *target != '/')
			return status_set(st, ST_INVALID_ARGUMENT,
			    "payload.rootfs[%zu].target: must be an absolute path", i);
		d->source = xstrdup(source);
		if (target != NULL && *target != '\0')
			d->target = xstrdup(target);
		else
			xasprintf(&d->target, TASK_DISK_TARGET_FMT, id);
		d->options = json_array();
		json_array_foreach (json_object_get(m, "options"), k, o) {
			const char *w = json_string_value(o);

			if (w == NULL || (strncmp(w, "fstype=", 7) == 0 && w[7] == '\0')) {
				task_disk_clear(d);
				return status_set(st, ST_INVALID_ARGUMENT,
				    "payload.rootfs[%zu].options[%zu]: expected a mount option or "
				    "fstype=NAME",
				    i, k);
			}
			if (strncmp(w, "fstype=", 7) == 0) {
				free(d->fstype);
				d->fstype = xstrdup(w + 7);
				continue;
			}
			if (strcmp(w, "ro") == 0)
				d->readonly = true;
			json_array_append_new(d->options, json_string(w));
		}
		if (d->fstype == NULL)
			d->fstype = xstrdup("ext4");
	}
	return 0;
}

/* Append "; what: other's message" to *st, keeping its code. */
static void
task_status_append(struct status *st, const char *what, const struct status *other)
{
	char first[STATUS_MSG_MAX];

	snprintf(first, sizeof first, "%s", st->msg);
	status_set(st, st->code, "%s; %s: %s", first, what, other->msg);
}

/* Worker: the agent unmounts a container's disk. */
static int
task_disk_unmount(const char *id, const char *target, int timeout_ms, struct status *st)
{
	cleanup_json json_t *req = json_pack("{s:s, s:s}", "id", id, "target", target);

	return guest_call("UnmountDisk", req, timeout_ms, false, NULL, st);
}

/* A bring-up job (Create or Exec). Strings are owned copies. */
struct task_bringup {
	struct task_call *call;
	char *id;
	char *exec_id; /* "" for Create */
	char *bundle;
	json_t *rootfs;	 /* Create: deep copy or NULL */
	json_t *process; /* Exec: deep copy of the OCI process */
	bool terminal;
	char *in, *out, *err;
	int timeout_ms;
	struct task_disk disk; /* Create: its block rootfs, if any */

	/* Results. */
	struct status st;
	uint32_t pid;
	struct io_prepared *io;
	bool disk_attached; /* the disk is in the VM */
	bool disk_mounted;  /* ... and the agent mounted it */
	bool shared;	    /* its root filesystem is mounted in the microVM's share */
	char serial[VM_DISK_SERIAL_MAX + 1];
};

static void
task_bringup_free(struct task_bringup *b)
{
	free(b->id);
	free(b->exec_id);
	free(b->bundle);
	json_decref(b->rootfs);
	json_decref(b->process);
	free(b->in);
	free(b->out);
	free(b->err);
	task_disk_clear(&b->disk);
	if (b->io != NULL)
		io_prepared_free(b->io);
	free(b);
}

static struct task_bringup *
task_bringup_new(
    struct task_call *call, const char *id, const char *exec_id, const struct task_stdio *s)
{
	struct task_bringup *b = xcalloc(1, sizeof *b);

	b->call = call;
	b->id = xstrdup(id);
	b->exec_id = xstrdup(exec_id);
	b->terminal = s->terminal;
	b->in = xstrdup(s->in);
	b->out = xstrdup(s->out);
	b->err = xstrdup(s->err);
	b->timeout_ms = call->timeout_ms;
	return b;
}

/* Read bundle/config.json and check what the agent needs from it (worker thread). */
static json_t *
task_read_bundle(const char *bundle, bool *terminal, struct status *st)
{
	cleanup_free char *path = NULL, *text = NULL, *shown = NULL;
	cleanup_json json_t *spec = NULL;
	json_t *process, *args;
	json_error_t jerr;
	size_t len;
	int r;

	xasprintf(&path, "%s/config.json", bundle);
	/* The client's path in answers and logs, cut as every peer string is. */
	xasprintf(&shown, "%.*s", LOG_STR_MAX, path);
	/* Never a blocking open: a FIFO here must not hold a worker (and every Create) for ever. */
	r = util_read_regular_file(path, TASK_BUNDLE_MAX, &text, &len);
	if (r < 0) {
		status_set(st, ST_INVALID_ARGUMENT, "payload.bundle: %s: %s", shown,
		    util_file_strerror(r, S_IFREG));
		return NULL;
	}
	spec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (spec == NULL) {
		if (jerr.line <= 0)
			status_set(
			    st, ST_INVALID_ARGUMENT, "payload.bundle: %s: %s", shown, jerr.text);
		else
			status_set(st, ST_INVALID_ARGUMENT, "payload.bundle: %s: line %d: %s",
			    shown, jerr.line, jerr.text);
		return NULL;
	}
	if (!json_is_object(spec)) {
		status_set(st, ST_INVALID_ARGUMENT, "payload.bundle: %s: not an object", shown);
		return NULL;
	}
	/* Only the allow-listed io.vmshim.* keys may come from a bundle (config.c). */
	if (config_check_annotations(&shim.cfg, json_object_get(spec, "annotations"), st) < 0) {
		status_wrap(st, "bundle %s", shown);
		return NULL;
	}
	if (msg_get_object(spec, shown, "process", true, &process, st) < 0 ||
	    msg_get_array(process, "process", "args", true, &args, st) < 0) {
		status_wrap(st, "payload.bundle");
		return NULL;
	}
	if (json_array_size(args) == 0) {
		status_set(st, ST_INVALID_ARGUMENT,
		    "payload.bundle: %s: process.args: must not be empty", shown);
		return NULL;
	}
	if (json_is_true(json_object_get(process, "terminal")))
		*terminal = true;
	return steal_ptr(&spec);
}

/* Worker, inside the bring-up span: hot-add the block rootfs, then the agent mounts it. */
static int
task_bringup_disks(struct task_bringup *b, struct status *st)
{
	cleanup_json json_t *req = NULL, *resp = NULL;
	int wait_ms = (int)shim.cfg.connect_timeout_ms;
	struct guest *g;
	const char *msg;

	if (b->disk.source == NULL)
		return 0;
	/* No device goes into a VM whose agent cannot be told to mount it. */
	if (b->timeout_ms > 0 && b->timeout_ms < wait_ms)
		wait_ms = b->timeout_ms;
	g = guest_get(wait_ms, st);
	if (g == NULL)
		return status_wrap(st, "Create %s: before hot-add of %s", b->id, b->disk.source);
	guest_put(g);
	if (vm_disk_attach(shim.disks, b->id, b->disk.source, b->disk.readonly, b->serial, st) < 0)
		return status_wrap(st, "Create %s", b->id);
	b->disk_attached = true;
	req = json_pack("{s:s, s:s, s:s, s:s, s:O}", "id", b->id, "serial", b->serial, "target",
	    b->disk.target, "fstype", b->disk.fstype, "options", b->disk.options);
	if (guest_call("MountDisk", req, b->timeout_ms, true, &resp, st) < 0)
		return status_wrap(
		    st, "Create %s: mount of serial %s at %s", b->id, b->serial, b->disk.target);
	msg = NULL;
	if (guest_reply_bool(resp, "MountDisk", "mounted", true, &b->disk_mounted, st) < 0 ||
	    guest_reply_string(resp, "MountDisk", "message", false, &msg, st) < 0) {
		/* The agent may have mounted it: unmount before the disk goes. */
		b->disk_mounted = true;
		return status_wrap(
		    st, "Create %s: mount of serial %s at %s", b->id, b->serial, b->disk.target);
	}
	if (b->disk_mounted)
		log_info_id(b->id, "", "agent mounted serial %s at %.*s (%.*s)", b->serial,
		    LOG_STR_MAX, b->disk.target, LOG_STR_MAX, b->disk.fstype);
	else
		log_info_id(b->id, "",
		    "agent did not mount serial %s: %.*s; the container keeps "
		    "its bundle's root",
		    b->serial, LOG_STR_MAX, msg != NULL ? msg : "no reason given");
	return 0;
}

/* Worker: undo the disk steps of a failed bring-up; their own failures are appended to *st. */
static void
task_bringup_disks_undo(struct task_bringup *b, struct status *st)
{
	struct status undo;

	if (b->disk_mounted && task_disk_unmount(b->id, b->disk.target, b->timeout_ms, &undo) < 0)
		task_status_append(st, "rollback", &undo);
	b->disk_mounted = false;
	if (b->disk_attached && vm_disk_detach(shim.disks, b->id, &undo) < 0)
		task_status_append(st, "rollback", &undo);
	b->disk_attached = false;
	if (b->shared && vm_share_unmount(b->id, b->timeout_ms, &undo) < 0)
		task_status_append(st, "rollback", &undo);
	b->shared = false;
}

/*
 * The stderr path the process really gets: a terminal merges stderr into stdout, so it has no
 * stderr stream, whatever the runtime passed (the one rule for what is declared and attached).
 */
static const char *
task_bringup_stderr(const struct task_bringup *b)
{
	return b->terminal ? "" : b->err;
}

/* Worker: take a process whose bring-up failed after the agent created it out of the agent. */
static void
task_bringup_forget(struct task_bringup *b)
{
	cleanup_json json_t *del = json_pack("{s:s, s:s}", "id", b->id, "exec_id", b->exec_id);
	struct status ignored;

	if (guest_call("DeleteProcess", del, b->timeout_ms, false, NULL, &ignored) < 0)
		log_warn_id(b->id, b->exec_id, "rollback: %s", ignored.msg);
}

/* Attach the declared streams; on failure, take the process out of the agent again. */
static int
task_bringup_attach(struct task_bringup *b, struct status *st)
{
	struct io_spec spec = {
	    .id = b->id,
	    .exec_id = b->exec_id,
	    .terminal = b->terminal,
	    .stdin_path = b->in,
	    .stdout_path = b->out,
	    .stderr_path = task_bringup_stderr(b),
	};

	b->io = io_prepare(&spec, &shim.cfg.stream_ep, (int)shim.cfg.connect_timeout_ms, st);
	if (b->io != NULL)
		return 0;
	status_wrap(st, "stdio");
	task_bringup_forget(b);
	return -1;
}

/* Worker: the shim is shutting down (worker_stopping): fail the bring-up before its next step. */
static bool
task_bringup_stopping(struct task_bringup *b)
{
	if (!worker_stopping())
		return false;
	status_set(&b->st, ST_UNAVAILABLE, "the shim is shutting down");
	log_info_id(b->id, b->exec_id, "bring-up stopped: the shim is shutting down");
	return true;
}

/*
 * The runtime's own root filesystem mounts (every rootfs[] entry but a block disk: an
 * overlay of image snapshots, a bind mount). With a microVM the shim's mounter mounts them on
 * the host in the share the guest reaches over 9p, and the container's root is the share's
 * directory as the guest sees it (rootfs_mount); the local VM's agent, on this host, mounts
 * them itself (rootfs_mounts).
 */
static int
task_bringup_host_mounts(struct task_bringup *b, json_t *req, struct status *st)
{
	cleanup_json json_t *mounts = json_array();
	cleanup_free char *guest = NULL;
	json_t *m;
	size_t i;

	if (b->disk.source == NULL) {
		json_array_foreach (b->rootfs, i, m) {
			json_t *opts = json_object_get(m, "options");

			json_array_append_new(mounts,
			    json_pack("{s:s, s:s, s:o}", "type",
				json_string_value(json_object_get(m, "type")), "source",
				json_string_value(json_object_get(m, "source")) ?: "", "options",
				opts != NULL ? json_incref(opts) : json_array()));
		}
	}
	if (json_array_size(mounts) == 0)
		return 0;
	if (!vm_share_active()) {
		json_object_set(req, "rootfs_mounts", mounts);
		return 0;
	}
	/* Set first: a mount that timed out may still complete, and unmounting is idempotent. */
	b->shared = true;
	if (vm_share_mount(b->id, mounts, b->timeout_ms, st) < 0)
		return status_wrap(st, "root filesystem");
	xasprintf(&guest, "%s/%s", VM_SHARE_GUEST_DIR, b->id);
	json_object_set_new(req, "rootfs_mount", json_string(guest));
	return 0;
}

/* Worker (a bring-up job): bundle, then under the bring-up span disk, CreateContainer, streams. */
static void
task_create_run(void *arg)
{
	struct task_bringup *b = arg;
	cleanup_json json_t *spec = NULL, *req = NULL, *resp = NULL;
	bool terminal = b->terminal;
	int64_t start;

	spec = task_read_bundle(b->bundle, &terminal, &b->st);
	if (spec == NULL)
		return;
	if (task_bringup_stopping(b))
		return;
	b->terminal = terminal;
	vm_bringup_begin(shim.bringup, b->id);
	start = time_mono_ms();
	log_debug_id(b->id, "", "bring-up begin");
	/* The lock may have taken long: stop here if the shim began to shut down meanwhile. */
	if (task_bringup_stopping(b) || task_bringup_disks(b, &b->st) < 0)
		goto undo;
	if (task_bringup_stopping(b))
		goto undo;
	req = json_pack("{s:s, s:s, s:O, s:s, s:b, s:b, s:b, s:b}", "id", b->id, "bundle",
	    b->bundle, "spec", spec, "rootfs_mount", b->disk_mounted ? b->disk.target : "",
	    "terminal", b->terminal, "stdin", *b->in != '\0', "stdout", *b->out != '\0', "stderr",
	    *task_bringup_stderr(b) != '\0');
	if (task_bringup_host_mounts(b, req, &b->st) < 0)
		goto undo;
	if (guest_call("CreateContainer", req, b->timeout_ms, true, &resp, &b->st) < 0)
		goto undo;
	if (guest_reply_u32(resp, "CreateContainer", "pid", true, &b->pid, &b->st) < 0) {
		task_bringup_forget(b);
		goto undo;
	}
	if (task_bringup_attach(b, &b->st) == 0)
		goto out;
undo:
	task_bringup_disks_undo(b, &b->st);
out:
	log_debug_id(b->id, "", "bring-up end after %lld ms: %s",
	    (long long)(time_mono_ms() - start), status_code_name(b->st.code));
	vm_bringup_end(shim.bringup, b->id);
}

static void
task_on_output_done(void *arg)
{
	struct task_proc *p = arg;

	p->output_done = true;
	task_proc_maybe_exit(p);
}

/* Loop: the process exists in the guest with its streams prepared: bridge them. */
static void
task_proc_start_io(struct task_proc *p, struct task_bringup *b)
{
	p->io = io_start(shim.base, steal_ptr(&b->io), task_on_output_done, p);
	if (p->io != NULL && io_output_done(p->io))
		p->output_done = true;
}

/*
 * Loop: the bring-up of p succeeded: announce it (/tasks/create for a container's init,
 * /tasks/exec-added for an exec) and return the answer's payload (NULL: none).
 */
static json_t *
task_bringup_publish(struct task_container *ctr, struct task_proc *p)
{
	json_t *rootfs;

	if (p != ctr->init) {
		log_info_id(ctr->id, p->exec_id, "exec added");
		events_publish("/tasks/exec-added",
		    json_pack("{s:s, s:s}", "container_id", ctr->id, "exec_id", p->exec_id));
		return NULL;
	}
	rootfs = ctr->rootfs != NULL ? json_incref(ctr->rootfs) : json_array();
	log_info_id(ctr->id, NULL, "created, pid %u", p->pid);
	events_publish("/tasks/create",
	    json_pack("{s:s, s:s, s:o, s:{s:s, s:s, s:s, s:b}, s:s, s:i}", "container_id", ctr->id,
		"bundle", ctr->bundle, "rootfs", rootfs, "io", "stdin", p->stdin_path, "stdout",
		p->stdout_path, "stderr", p->stderr_path, "terminal", p->terminal, "checkpoint", "",
		"pid", (int)p->pid));
	return json_pack("{s:i}", "pid", (int)p->pid);
}

/*
 * Loop: the completion of a Create or an Exec bring-up (b->exec_id "" for a container's
 * init). Look the process up again (a shutdown may have emptied the table); on failure take
 * it out of the table (the whole container for an init) and answer the bring-up's status;
 * on success record what the guest said, bridge the stdio, publish and answer.
 */
static void
task_bringup_done(void *arg)
{
	struct task_bringup *b = arg;
	struct task_container *ctr = task_find(b->id);
	struct task_proc *p = ctr != NULL ? task_find_proc(ctr, b->exec_id) : NULL;
	bool init = *b->exec_id == '\0';

	if (p == NULL || p->state != PROC_CREATING) {
		task_call_finish(b->call, ST_UNAVAILABLE, "the shim is shutting down", NULL);
	} else if (b->st.code != ST_OK) {
		log_warn_id(
		    b->id, b->exec_id, "%s failed: %s", init ? "create" : "exec", b->st.msg);
		task_proc_remove(p); /* an init takes its container with it */
		task_call_finish_status(b->call, &b->st);
	} else {
		if (init) {
			p->pid = b->pid;
			ctr->disk = b->disk_attached;
			ctr->disk_mounted = b->disk_mounted;
			ctr->shared = b->shared;
		}
		p->terminal = b->terminal;
		task_proc_start_io(p, b);
		p->state = PROC_CREATED;
		task_call_finish(b->call, ST_OK, "", task_bringup_publish(ctr, p));
	}
	task_bringup_free(b);
}

void
task_create(struct task_call *call)
{
	json_t *pl = call->req.payload, *rootfs = NULL, *m;
	const char *id = NULL, *bundle = NULL;
	struct task_stdio sio;
	struct task_bringup *b;
	struct task_container *ctr;
	struct task_disk disk;
	struct status st;
	size_t i;

	if (msg_get_string(pl, "payload", "id", true, &id, &st) < 0 ||
	    protocol_check_id("id", id, false, &st) < 0 ||
	    msg_get_string(pl, "payload", "bundle", true, &bundle, &st) < 0 ||
	    msg_get_array(pl, "payload", "rootfs", false, &rootfs, &st) < 0 ||
	    task_get_stdio(pl, &sio, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	if (*bundle == '\0') {
		task_call_finish(
		    call, ST_INVALID_ARGUMENT, "payload.bundle: must not be empty", NULL);
		return;
	}
	json_array_foreach (rootfs, i, m) {
		char where[64];
		const char *s;
		json_t *opts;

		snprintf(where, sizeof where, "payload.rootfs[%zu]", i);
		if (!json_is_object(m)) {
			task_call_finish(call, ST_INVALID_ARGUMENT,
			    "payload.rootfs: expected an array of objects", NULL);
			return;
		}
		if (msg_get_string(m, where, "type", true, &s, &st) < 0 ||
		    msg_get_string(m, where, "source", false, &s, &st) < 0 ||
		    msg_get_string(m, where, "target", false, &s, &st) < 0 ||
		    msg_get_array(m, where, "options", false, &opts, &st) < 0) {
			task_call_finish_status(call, &st);
			return;
		}
	}
	if (task_disk_parse(rootfs, id, &disk, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	if (disk.source != NULL && shim.disks == NULL) {
		task_disk_clear(&disk);
		task_call_finish(call, ST_FAILED_PRECONDITION,
		    "vm.qmp is not configured: this VM takes no hot-added disks", NULL);
		return;
	}
	if (task_find(id) != NULL) {
		task_disk_clear(&disk);
		task_call_finish(call, ST_ALREADY_EXISTS, "container already exists", NULL);
		return;
	}

	ctr = task_add(id, bundle);
	ctr->rootfs = rootfs != NULL ? json_deep_copy(rootfs) : NULL;
	task_proc_set_stdio(task_proc_new(ctr, ""), &sio);
	b = task_bringup_new(call, id, "", &sio);
	b->bundle = xstrdup(bundle);
	b->rootfs = rootfs != NULL ? json_deep_copy(rootfs) : json_array();
	b->disk = disk;
	if (worker_submit_bringup(task_create_run, task_bringup_done, b, &st) < 0) {
		b->call = NULL;
		task_bringup_free(b);
		task_container_remove(ctr);
		task_call_finish_status(call, &st);
	}
}

/* ---- Exec ---- */

static void
task_exec_run(void *arg)
{
	struct task_bringup *b = arg;
	cleanup_json json_t *req = NULL, *resp = NULL;

	if (json_is_true(json_object_get(b->process, "terminal")))
		b->terminal = true;
	req = json_pack("{s:s, s:s, s:O, s:b, s:b, s:b, s:b}", "id", b->id, "exec_id", b->exec_id,
	    "process", b->process, "terminal", b->terminal, "stdin", *b->in != '\0', "stdout",
	    *b->out != '\0', "stderr", *task_bringup_stderr(b) != '\0');
	if (guest_call("ExecProcess", req, b->timeout_ms, true, &resp, &b->st) == 0)
		task_bringup_attach(b, &b->st);
}

void
task_exec(struct task_call *call)
{
	json_t *pl = call->req.payload, *spec = NULL, *args;
	const char *id = NULL, *exec_id = NULL;
	struct task_stdio sio;
	struct task_bringup *b;
	struct task_container *ctr;
	struct status st;

	if (msg_get_string(pl, "payload", "id", true, &id, &st) < 0 ||
	    msg_get_string(pl, "payload", "exec_id", true, &exec_id, &st) < 0 ||
	    protocol_check_id("exec_id", exec_id, false, &st) < 0 ||
	    task_get_stdio(pl, &sio, &st) < 0 ||
	    msg_get_object(pl, "payload", "spec", true, &spec, &st) < 0 ||
	    msg_get_array(spec, "payload.spec", "args", true, &args, &st) < 0) {
		task_call_finish_status(call, &st);
		return;
	}
	if (json_array_size(args) == 0) {
		task_call_finish(
		    call, ST_INVALID_ARGUMENT, "payload.spec.args: must not be empty", NULL);
		return;
	}
	ctr = task_find(id);
	if (ctr == NULL || ctr->init == NULL) {
		task_call_finish(call, ST_NOT_FOUND, "container not found", NULL);
		return;
	}
	if (ctr->init->state == PROC_CREATING) {
		task_call_finish(call, ST_FAILED_PRECONDITION, "container is being created", NULL);
		return;
	}
	if (ctr->init->state != PROC_RUNNING) {
		task_call_finish(call, ST_FAILED_PRECONDITION, "container is not running", NULL);
		return;
	}
	if (task_find_proc(ctr, exec_id) != NULL) {
		task_call_finish(call, ST_ALREADY_EXISTS, "exec id already exists", NULL);
		return;
	}

	task_proc_set_stdio(task_proc_new(ctr, exec_id), &sio);
	b = task_bringup_new(call, id, exec_id, &sio);
	b->process = json_deep_copy(spec);
	if (worker_submit(task_exec_run, task_bringup_done, b, &st) < 0) {
		b->call = NULL;
		task_bringup_free(b);
		task_proc_remove(task_find_proc(ctr, exec_id));
		task_call_finish_status(call, &st);
	}
}

/* ---- Start ---- */

struct task_simple_job {
	struct task_call *call;
	char *id, *exec_id;
	int timeout_ms;
	struct status st;
	json_t *resp;
	uint32_t pid; /* Start: the agent's answer */

	/* Delete of an init process whose container has a hot-added disk. */
	bool disk, disk_mounted;
	char *disk_target;
	bool shared;	       /* ... or whose root filesystem is in the microVM's share */
	struct status disk_st; /* why the disk could not be removed */
};

static struct task_simple_job *
task_simple_job_new(struct task_call *call, const char *id, const char *exec_id)
{
	struct task_simple_job *j = xcalloc(1, sizeof *j);

	j->call = call;
	j->id = xstrdup(id);
	j->exec_id = xstrdup(exec_id);
	j->timeout_ms = call->timeout_ms;
	return j;
}

static void
task_simple_job_free(struct task_simple_job *j)
{
	free(j->id);
	free(j->exec_id);
	free(j->disk_target);
	json_decref(j->resp);
	free(j);
}

static void
task_start_run(void *arg)
{
	struct task_simple_job *j = arg;
	cleanup_json json_t *req = json_pack("{s:s, s:s}", "id", j->id, "exec_id", j->exec_id);

	guest_call("StartProcess", req, j->timeout_ms, true, &j->resp, &j->st);
}

static void
task_start_done(void *arg)
{
	struct task_simple_job *j = arg;
	struct task_call *call = j->call;
	struct task_container *ctr = task_find(j->id);
	struct task_proc *p = ctr != NULL ? task_find_proc(ctr, j->exec_id) : NULL;

	if (p == NULL || !p->starting) {
		task_call_finish(call, ST_UNAVAILABLE, "the shim is shutting down", NULL);
		task_simple_job_free(j);
		return;
	}
	p->starting = false;
	if (j->st.code == ST_OK)
		guest_reply_u32(j->resp, "StartProcess", "pid", true, &j->pid, &j->st);
	if (j->st.code != ST_OK) {
		log_warn_id(j->id, j->exec_id, "start failed: %s", j->st.msg);
		task_call_finish_status(call, &j->st);
		task_simple_job_free(j);
		task_proc_maybe_exit(p);
		return;
	}
	p->pid = j->pid;
	p->state = PROC_RUNNING;
	log_info_id(j->id, j->exec_id, "started, pid %u", p->pid);
	if (*p->exec_id == '\0')
		events_publish("/tasks/start",
		    json_pack("{s:s, s:i}", "container_id", j->id, "pid", (int)p->pid));
	else
		events_publish(
		    "/tasks/exec-started", json_pack("{s:s, s:s, s:i}", "container_id", j->id,
					       "exec_id", j->exec_id, "pid", (int)p->pid));
	task_call_finish(call, ST_OK, "", json_pack("{s:i}", "pid", (int)p->pid));
	task_simple_job_free(j);
	task_proc_maybe_exit(p);
}

void
task_start(struct task_call *call)
{
	const char *id, *exec_id;
	struct task_simple_job *j;
	struct task_proc *p;
	struct status st;

	if ((p = task_call_proc(call, &id, &exec_id)) == NULL)
		return;
	/* Delete won the race: the process is going, so there is nothing to start. */
	if (p->state == PROC_DELETING) {
		task_call_finish(call, ST_NOT_FOUND, "process is being deleted", NULL);
		return;
	}
	if (p->state != PROC_CREATED || p->starting) {
		task_call_finish(call, ST_FAILED_PRECONDITION,
		    p->starting ? "process is already starting" : "process was already started",
		    NULL);
		return;
	}
	j = task_simple_job_new(call, id, exec_id);
	if (worker_submit(task_start_run, task_start_done, j, &st) < 0) {
		j->call = NULL;
		task_simple_job_free(j);
		task_call_finish_status(call, &st);
		return;
	}
	p->starting = true;
}

/* ---- Delete ---- */

/* Worker: unmount and remove a deleted container's disk; a failure lands in j->disk_st. */
static void
task_delete_disk(struct task_simple_job *j)
{
	struct status st;

	status_clear(&j->disk_st);
	vm_bringup_begin(shim.bringup, j->id);
	if (j->disk_mounted && task_disk_unmount(j->id, j->disk_target, j->timeout_ms, &st) < 0)
		log_warn_id(j->id, "", "Delete: %s (removing the disk anyway)", st.msg);
	if (vm_disk_detach(shim.disks, j->id, &j->disk_st) < 0)
		status_wrap(&j->disk_st, "Delete %s", j->id);
	vm_bringup_end(shim.bringup, j->id);
}

static void
task_delete_run(void *arg)
{
	struct task_simple_job *j = arg;
	cleanup_json json_t *req = json_pack("{s:s, s:s}", "id", j->id, "exec_id", j->exec_id);
	struct status st;

	/* No waiting for a link: Delete must work from the shim's state with the agent down. */
	guest_call("DeleteProcess", req, j->timeout_ms, false, &j->resp, &j->st);
	if (j->st.code != ST_OK && j->st.code != ST_UNAVAILABLE && j->st.code != ST_NOT_FOUND)
		return;
	if (j->disk)
		task_delete_disk(j);
	if (j->shared && vm_share_unmount(j->id, j->timeout_ms, &st) < 0)
		log_error_id(j->id, "",
		    "Delete: its root filesystem stays mounted in the share: %s", st.msg);
}

static void
task_delete_done(void *arg)
{
	struct task_simple_job *j = arg;
	struct task_call *call = j->call;
	struct task_container *ctr = task_find(j->id);
	struct task_proc *p = ctr != NULL ? task_find_proc(ctr, j->exec_id) : NULL;
	cleanup_json json_t *resp = NULL;
	bool last;

	if (p == NULL || p->state != PROC_DELETING) {
		task_call_finish(call, ST_UNAVAILABLE, "the shim is shutting down", NULL);
		task_simple_job_free(j);
		return;
	}
	if (j->st.code != ST_OK && j->st.code != ST_UNAVAILABLE && j->st.code != ST_NOT_FOUND) {
		p->state = p->exit_seen ? PROC_STOPPED : PROC_CREATED;
		task_call_finish_status(call, &j->st);
		task_simple_job_free(j);
		return;
	}
	if (j->st.code != ST_OK)
		log_warn_id(
		    j->id, j->exec_id, "deleting from the shim's state only: %s", j->st.msg);
	if (j->disk && j->disk_st.code != ST_OK)
		log_error_id(j->id, j->exec_id,
		    "the Delete completes, but its disk stays in the VM: %s", j->disk_st.msg);
	if (!p->exit_seen) {
		/* Never started (or the agent is gone): take the agent's word, or 255. */
		p->exit_status = 255;
		if (j->st.code == ST_OK) {
			const char *at = NULL;
			int status;
			struct status rst;

			if (guest_reply_exit_status(j->resp, "DeleteProcess", &status, &rst) < 0 ||
			    guest_reply_time(j->resp, "DeleteProcess", "exited_at", &at, &rst) <
				0) {
				log_error_id(
				    j->id, j->exec_id, "%s: reporting exit status 255", rst.msg);
			} else {
				p->exit_status = status;
				if (at != NULL)
					snprintf(p->exited_at, sizeof p->exited_at, "%s", at);
			}
		}
		if (p->exited_at[0] == '\0')
			time_rfc3339_now(p->exited_at);
		p->exit_seen = true;
		/* It never ran: no /tasks/exit (as containerd); its waiters learn the end here. */
		task_proc_end_quiet(p);
	}
	resp = json_pack("{s:i, s:i, s:s}", "pid", (int)p->pid, "exit_status", p->exit_status,
	    "exited_at", p->exited_at);
	events_publish(
	    "/tasks/delete", json_pack("{s:s, s:i, s:i, s:s, s:s}", "container_id", j->id, "pid",
				 (int)p->pid, "exit_status", p->exit_status, "exited_at",
				 p->exited_at, "id", *j->exec_id != '\0' ? j->exec_id : j->id));
	log_info_id(j->id, j->exec_id, "deleted");
	task_proc_remove(p);
	task_call_finish(call, ST_OK, "", steal_ptr(&resp));
	last = task_table_empty();
	task_simple_job_free(j);
	if (last && shim.exit_when_empty) {
		log_info("last task deleted after Shutdown: exiting");
		task_request_exit();
	}
}

/*
 * Delete of a process that exited but whose output has not drained (a host FIFO nobody
 * reads): the runtime has given up on that output, so it is dropped with the stdio bridge
 * and the exit is published now, before the Delete (as for any finished process).
 */
static void
task_delete_abandon_output(struct task_proc *p)
{
	if (!p->exit_seen || p->state != PROC_RUNNING || p->starting || p->output_done)
		return;
	log_warn_id(p->ctr->id, p->exec_id,
	    "Delete before stdout/stderr drained: dropping the undelivered output");
	io_free(p->io);
	p->io = NULL;
	p->output_done = true;
	task_proc_maybe_exit(p);
}

void
task_delete(struct task_call *call)
{
	const char *id, *exec_id;
	struct task_simple_job *j;
	struct task_proc *p;
	struct status st;

	if ((p = task_call_proc(call, &id, &exec_id)) == NULL)
		return;
	if (p->state == PROC_DELETING) {
		task_call_finish(
		    call, ST_FAILED_PRECONDITION, "process is already being deleted", NULL);
		return;
	}
	if (p->starting || (p->state == PROC_RUNNING && !p->exit_seen)) {
		task_call_finish(call, ST_FAILED_PRECONDITION,
		    "process is running: kill it before deleting it", NULL);
		return;
	}
	if (p == p->ctr->init)
		for (struct task_proc *e = p->ctr->execs; e != NULL; e = e->next)
			if ((e->state == PROC_RUNNING && !e->exit_seen) || e->starting ||
			    e->state == PROC_CREATING || e->state == PROC_DELETING) {
				task_call_finish(call, ST_FAILED_PRECONDITION,
				    "an exec of this container is still running or busy", NULL);
				return;
			}
	task_delete_abandon_output(p);
	if (p == p->ctr->init)
		for (struct task_proc *e = p->ctr->execs; e != NULL; e = e->next)
			task_delete_abandon_output(e);
	j = task_simple_job_new(call, id, exec_id);
	if (p == p->ctr->init && p->ctr->disk) {
		struct task_disk disk;

		/* Create parsed the same entry, so this cannot fail now. */
		if (task_disk_parse(p->ctr->rootfs, id, &disk, &st) < 0 || disk.source == NULL)
			fatalx("task_delete: container %s lost its block rootfs", id);
		j->disk = true;
		j->disk_mounted = p->ctr->disk_mounted;
		j->disk_target = steal_ptr(&disk.target);
		task_disk_clear(&disk);
	}
	j->shared = p == p->ctr->init && p->ctr->shared;
	if ((j->disk ? worker_submit_bringup : worker_submit)(
		task_delete_run, task_delete_done, j, &st) < 0) {
		j->call = NULL;
		task_simple_job_free(j);
		task_call_finish_status(call, &st);
		return;
	}
	p->state = PROC_DELETING;
}
