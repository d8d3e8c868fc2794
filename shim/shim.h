/*
 * shim.h: the vmshim daemon's internal header, one section per file.
 *
 * Threads: one libevent loop thread (loop.c) owns every connection, the task table
 * (task*.c), the event subscribers (events.c) and the guest link's reading side (guest.c);
 * `workers` worker threads (worker.c) run blocking jobs (guest RPC, stdio preparation) whose
 * completions come back to the loop thread; one accept thread (accept.c) accepts and checks
 * peers and hands their descriptors to the loop; while QEMU is connected, one QMP reader thread
 * (vm-qmp.c) hands QEMU's replies and events to the workers waiting for them. Nothing here is
 * shared between threads unless its comment says how it is guarded.
 */
#ifndef VMSHIM_SHIM_H
#define VMSHIM_SHIM_H

#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "log.h"
#include "msg.h"
#include "protocol.h"
#include "rpc.h"
#include "status.h"
#include "transport.h"
#include "vm.h"

/* config.c */

/* SYSCONFDIR comes from configure (--sysconfdir), so make install and the shim agree. */
#define CONFIG_DEFAULT_PATH SYSCONFDIR "/vmshim/config.json"

/* vm.launch: where the group's VM comes from. */
enum vm_launch {
	VM_LAUNCH_DEFAULT, /* not set: "none" with vm.vsock, else "local" (config_endpoints) */
	VM_LAUNCH_NONE,	   /* attach to a VM someone else runs, at vm.vsock */
	VM_LAUNCH_LOCAL,   /* start vmshim-agent on this host as our child (vm-local.c) */
	VM_LAUNCH_QEMU,	   /* a real microVM: vmshim-vsock and QEMU as our children (vm-qemu.c) */
};

struct shim_config {
	char *vm_vsock;
	enum vm_launch vm_launch;
	char *vm_agent; /* "" : beside our binary, else PATH */
	uint32_t vm_cpus;
	uint32_t vm_memory_mib;
	uint32_t boot_timeout_ms;
	char *vm_qemu;	 /* the QEMU binary: a path, or a name on PATH */
	char *vm_kernel; /* "" : the installed guest image (GUEST_DIR) */
	char *vm_initrd;
	char *vm_accel;		    /* "auto", "kvm" or "tcg" */
	char **allowed_annotations; /* io.vmshim.* keys a bundle may set beyond the built-in */
	size_t n_allowed_annotations;
	uint32_t agent_port;
	uint32_t stream_port;
	char *vm_qmp;
	char **hotplug_ports;
	size_t n_hotplug_ports;
	uint32_t unplug_timeout_ms;
	bool confidential;
	uint32_t connect_timeout_ms;
	uint32_t workers;
	uint32_t max_connections;
	uint32_t max_message_bytes;
	uint32_t handshake_timeout_ms;
	uint32_t request_timeout_ms;
	uid_t *allowed_uids;
	size_t n_allowed_uids;
	bool seccomp;
	enum log_level log_level;

	/* From the first bundle (config_apply_bundle): its linux.cgroupsPath, or NULL. */
	char *vm_cgroup;

	/* Derived from vm_vsock and the ports by config_endpoints(). */
	struct endpoint agent_ep;
	struct endpoint stream_ep;
};

void config_defaults(struct shim_config *cfg);
/* Load path over the defaults; a missing file is fine only when !must_exist. */
int config_load(struct shim_config *cfg, const char *path, bool must_exist, struct status *st);
/* The same from a document in memory; src names it in messages ("config PATH"). */
int config_parse(
    struct shim_config *cfg, const char *buf, size_t len, const char *src, struct status *st);
/* Apply io.vmshim.* annotations of an OCI config.json object. */
int config_apply_annotations(struct shim_config *cfg, json_t *annotations, struct status *st);
/*
 * Check a bundle's annotations against the allow-list and their values, without applying
 * them (a container joining a running group cannot change its VM).
 */
int config_check_annotations(const struct shim_config *cfg, json_t *annotations, struct status *st);
/* Read bundle/config.json (if present) and apply its annotations. */
int config_apply_bundle(struct shim_config *cfg, const char *bundle, struct status *st);
/*
 * Settle vm.launch (absent: "none" with vm.vsock, else "local") and compute agent_ep and
 * stream_ep from vm.vsock and the ports; src names the config file. With "local" and no
 * vm.vsock the endpoints are left for vm_local_start.
 */
int config_endpoints(struct shim_config *cfg, const char *src, struct status *st);
void config_free(struct shim_config *cfg);

/* containerd.c */

/*
 * The group of a bundle: its annotation io.vmshim.group, else io.kubernetes.cri.sandbox-id,
 * else id (bundle may be NULL). *out is a file-name-safe string the caller frees.
 */
int containerd_group(const char *bundle, const char *id, char **out, struct status *st);
/* Write address to BUNDLE/address (atomically: a temporary file renamed). */
int containerd_write_address(const char *bundle, const char *address, struct status *st);
/*
 * Decode start's stdin (a protobuf Any, possibly empty): the config_path of a
 * runtimeoptions.v1.Options, or *out NULL when there is none.
 */
int containerd_options_config_path(const uint8_t *buf, size_t len, char **out, struct status *st);
/* Encode a protobuf containerd.task.v2.DeleteResponse into *out (freed by the caller). */
size_t containerd_delete_response(
    uint32_t pid, uint32_t exit_status, const struct timespec *at, uint8_t **out);

/* guest-reply.c */

/*
 * Fields of an agent reply or event (resp may be NULL: every field is then missing). A
 * missing required field or a wrong type is INTERNAL "malformed reply from the agent:
 * METHOD.KEY: ...". Optional fields left absent leave *out untouched (strings: NULL).
 */
int guest_reply_u32(json_t *resp, const char *method, const char *key, bool required, uint32_t *out,
    struct status *st);
/* exit_status: required, 0..65535. */
int guest_reply_exit_status(json_t *resp, const char *method, int *out, struct status *st);
int guest_reply_string(json_t *resp, const char *method, const char *key, bool required,
    const char **out, struct status *st);
/* An optional RFC 3339 time string; *out NULL when absent. */
int guest_reply_time(
    json_t *resp, const char *method, const char *key, const char **out, struct status *st);
int guest_reply_bool(
    json_t *resp, const char *method, const char *key, bool required, bool *out, struct status *st);

/* vm-local.c */

/*
 * Launch vmshim-agent as the embedded local VM in state_dir, point cfg's endpoints at it and
 * wait until it answers (vm.boot_timeout_ms). Main thread, before any other thread exists and
 * before seccomp. On failure nothing is left running.
 */
int vm_local_start(struct shim_config *cfg, const char *state_dir, struct status *st);
/* The agent's pid, or -1. */
pid_t vm_local_pid(void);
/* SIGTERM the agent (it kills its containers), SIGKILL it after a grace period, reap it. */
void vm_local_stop(void);
/*
 * `vmshim delete`: stop what a dead shim's local VM left in state_dir (the agent, the runc
 * containers it ran) and remove state_dir. Problems are printed on stderr; nothing fails.
 */
void vm_local_cleanup(const char *state_dir);

/* vm-qemu.c */

/*
 * Launch the group's microVM (vmshim-vsock, then QEMU) in state_dir, point cfg's endpoints
 * and vm.qmp at it and wait until the agent answers (vm.boot_timeout_ms). Main thread,
 * before any other thread exists and before seccomp. On failure *st is one line naming the
 * step and nothing is left running.
 */
int vm_qemu_start(struct shim_config *cfg, const char *state_dir, struct status *st);
/*
 * Loop thread, on SIGCHLD: reap QEMU or the backend if one ended; true (with what ended in
 * why) when the VM is gone.
 */
bool vm_qemu_reap(char *why, size_t len);
/* Loop thread, the VM is gone: SIGKILL whichever of the two still runs (reaped later). */
void vm_qemu_kill_all(void);
/* Kill and reap QEMU and the backend (if running), remove the state directory. */
void vm_qemu_stop(void);
/* `vmshim delete`: kill the QEMU and backend a dead shim left in state_dir. */
void vm_qemu_cleanup(const char *state_dir);

/* vm-cgroup.c */

/*
 * linux.cgroupsPath (a path, or systemd's SLICE:PREFIX:NAME) as a path relative to a cgroup
 * hierarchy's root ("/a/b"); INVALID_ARGUMENT for "..", empty components or a malformed form.
 */
int vm_cgroup_resolve(const char *spec, char *out, size_t len, struct status *st);
/*
 * Main thread, before seccomp: create the cgroup spec names in each hierarchy (the unified
 * one, or the v1 controllers; a no-op for NULL or "", or with none mounted), record them in
 * STATE/cgroup and move pids[0..n) into them.
 */
int vm_cgroup_join(
    const char *spec, const char *state_dir, const pid_t *pids, size_t n, struct status *st);
/* After the VM's processes are reaped: remove the cgroup vm_cgroup_join made. */
void vm_cgroup_leave(void);
/* `vmshim delete`: remove the cgroup a dead shim's VM was in (STATE/cgroup). */
void vm_cgroup_cleanup(const char *state_dir);

/* vm-share.c */

/* The 9p mount tag of the share, and where the guest's init mounts it. */
#define VM_SHARE_TAG	   "vmshim-rootfs"
#define VM_SHARE_GUEST_DIR "/run/vmshim-rootfs"

/*
 * Make STATE/share (exported to the guest) and fork the mounter that mounts containers' root
 * filesystems in it. Main thread, before any other thread exists and before seccomp.
 */
int vm_share_start(const char *state_dir, struct status *st);
/* STATE/share, or NULL when no share was started. */
const char *vm_share_dir(void);
/* The mounter's pid, or -1. */
pid_t vm_share_pid(void);
/* Is there a share (vm.launch "qemu")? */
bool vm_share_active(void);
/*
 * Worker: mount a container's rootfs list (checked with mount_list_check by the mounter) on
 * STATE/share/ID, which the guest sees as VM_SHARE_GUEST_DIR/ID. Blocks up to timeout_ms.
 */
int vm_share_mount(const char *id, json_t *mounts, int timeout_ms, struct status *st);
/* Worker: unmount STATE/share/ID and remove it. Blocks up to timeout_ms. */
int vm_share_unmount(const char *id, int timeout_ms, struct status *st);
/*
 * After every thread has ended: close the mounter's socket (it unmounts what is left and
 * exits), reap it, remove STATE/share. False when STATE/share could not be removed (a mount
 * the mounter left): the caller must then not remove the state directory recursively.
 */
bool vm_share_stop(void);
/* `vmshim delete`: unmount and remove whatever a dead shim left in STATE/share. */
void vm_share_cleanup(const char *state_dir);

/* worker.c */

/*
 * A job runs `run(arg)` on a worker thread, then `done(arg)` on the loop thread; `done` owns
 * and frees arg. Both may be NULL.
 */
int worker_init(
    struct event_base *base, unsigned nworkers, unsigned queue_per_worker, struct status *st);
/* Queue a job; -1 with RESOURCE_EXHAUSTED when the queue is full or shutting down. */
int worker_submit(void (*run)(void *), void (*done)(void *), void *arg, struct status *st);
/*
 * Queue a bring-up job (one that may wait on the bring-up lock, QEMU or an unplug): at most
 * max(1, workers - 1) of them run at once, so one worker stays free for every other job.
 */
int worker_submit_bringup(void (*run)(void *), void (*done)(void *), void *arg, struct status *st);
/*
 * Stop taking jobs, let running ones finish, join the threads, run the last completions, and
 * hand queued jobs that never started to their `done` without running them.
 */
void worker_shutdown(void);
/*
 * Loop thread, first thing at shutdown: worker_stopping() turns true and no queued job starts
 * any more (worker_shutdown hands them back).
 */
void worker_stop_begin(void);
/* Any thread: shutdown has begun; a long job should stop at its next step. */
bool worker_stopping(void);

/* accept.c */

/*
 * Spawn the accept thread on listen_fd (ownership stays with the caller). The thread calls
 * notify (from its own thread) after queueing each accepted fd for accept_take().
 */
int accept_start(
    int listen_fd, const struct shim_config *cfg, void (*notify)(void), struct status *st);
/* Wake and join the accept thread; fds it queued but the loop did not take are closed. */
void accept_stop(void);
/* Loop thread: take the next accepted fd, or -1. */
int accept_take(void);
/* Loop thread: a connection the accept thread counted has closed. */
void accept_conn_closed(void);

/* loop.c */

struct shim {
	struct event_base *base;
	struct shim_config cfg;
	const char *socket_path;
	const char *pid_path;
	const char *state_dir; /* the local VM's socket and files */
	pid_t pid;
	bool shutting_down;
	bool exit_when_empty; /* Shutdown without now: exit when the last task is deleted */
	atomic_bool vm_gone;  /* the launched VM died (loop.c sets it; guest.c reads it anywhere) */

	/*
	 * The VM itself (vm.h), created by loop_run before the workers and freed after they are
	 * joined; used from workers only. qmp and disks are NULL when vm.qmp is empty.
	 */
	struct qmp *qmp;
	struct vm_disks *disks;
	struct vm_bringup *bringup;
};

extern struct shim shim;

/*
 * Run the daemon on an already listening socket until Shutdown or a signal. Once start-up has
 * fully succeeded (workers, guest link, accept thread, seccomp) it writes "R" to ready_fd (if
 * >= 0) and closes it; on a start-up failure it returns -1 leaving ready_fd open, for the
 * caller to report the error on it.
 */
int loop_run(int listen_fd, int ready_fd, struct status *st);
/* Loop thread: begin the orderly shutdown (answers parked calls, stops everything). */
void loop_request_exit(void);

/* guest.c */

struct guest;

/*
 * What the link reports to the layer above it (the task table), all on the loop thread: an
 * event from the agent's stream, the loss of a published link (in-flight calls have already
 * failed UNAVAILABLE with `why`), and a link newly published (exits may have been missed).
 * loop_run passes the task layer's table (task_guest_ops) to guest_init at start-up, so
 * guest.c calls up into the task table through these pointers only.
 */
struct guest_ops {
	void (*event)(const char *topic, json_t *event);
	void (*lost)(const char *why);
	void (*resync)(void);
};

/* Loop thread: start connecting to the agent; ops must outlive the link. */
int guest_init(const struct guest_ops *ops, struct status *st);
/* Worker thread: a reference to the live agent link, waiting up to wait_ms for one. */
struct guest *guest_get(int wait_ms, struct status *st);
void guest_put(struct guest *g);
/* Worker thread: one agent call over the live link (UNAVAILABLE when there is none). */
int guest_call(const char *method, json_t *payload, int timeout_ms, bool wait, json_t **resp,
    struct status *st);
bool guest_connected(void);
/* Loop thread: fail in-flight calls, stop reconnecting, drop the link. */
void guest_shutdown(void);

/* events.c */

void events_subscribe(struct rpc_conn *c, uint32_t stream_id, struct msg_request *req);
/*
 * Publish an event to every subscriber and to containerd (forward.h); steals `event`.
 * Returns its forwarding sequence number (0: not forwarded), for forward_settled().
 */
uint64_t events_publish(const char *topic, json_t *event);
void events_shutdown(void);
/* Loop thread: connection c closed; forget its subscriptions now. Returns how many. */
unsigned events_conn_closed(struct rpc_conn *c);

/* task.c: dispatch and the shared task table */

/*
 * A request being answered: the connection (referenced), the stream id, the decoded request
 * (owning its payload). task_call_finish* answers and frees it.
 */
struct task_call {
	struct rpc_conn *conn;
	uint32_t stream_id;
	struct msg_request req;
	int timeout_ms; /* the request's timeout_nano, or request_timeout_ms */
};

enum proc_state {
	PROC_CREATING, /* a worker is bringing it up: invisible except to duplicate checks */
	PROC_CREATED,
	PROC_RUNNING,
	PROC_STOPPED, /* exit published */
	PROC_DELETING,
};

struct task_waiter {
	struct rpc_conn *conn;
	uint32_t stream_id;
	struct task_waiter *next;
};

struct task_container;

struct task_proc {
	struct task_container *ctr;
	char *exec_id; /* "" for init */
	enum proc_state state;
	uint32_t pid;
	bool terminal;
	char *stdin_path;
	char *stdout_path;
	char *stderr_path;
	struct io_streams *io; /* owned; NULL when no stdio or torn down */
	bool starting;	       /* a Start job is in flight */
	bool exit_seen;	       /* the agent reported the exit */
	bool output_done;      /* every stdout/stderr byte reached the host */
	int exit_status;
	char exited_at[40];
	uint64_t exit_forward; /* its /tasks/exit's forwarding number: Waits hold until settled */
	struct task_waiter *waiters;
	struct task_proc *next; /* in ctr->execs */
};

struct task_container {
	char *id;
	char *bundle;
	json_t *rootfs;
	bool paused;
	bool disk;	   /* a block rootfs is hot-added (task-lifecycle.c removes it on Delete) */
	bool disk_mounted; /* ... and the agent mounted it (Delete unmounts it first) */
	bool shared;	   /* its root is mounted in the microVM's share (Delete unmounts it) */
	struct task_proc *init;
	struct task_proc *execs;
	struct task_container *next;
};

/* The process after p in ctr (NULL: the first): its init, when there is one, then its execs. */
struct task_proc *task_proc_next(struct task_container *ctr, struct task_proc *p);
#define TASK_FOREACH_PROC(ctr, p)                                                                  \
	for ((p) = task_proc_next((ctr), NULL); (p) != NULL; (p) = task_proc_next((ctr), (p)))

typedef void (*task_method_fn)(struct task_call *call);

/*
 * Loop thread, at start-up: how the table asks the daemon to exit (loop_request_exit), after
 * a Shutdown, at once or once the last task is deleted.
 */
void task_init(void (*request_exit)(void));
/* Loop thread: ask the daemon to exit (the callback given to task_init). */
void task_request_exit(void);
void task_dispatch(struct rpc_conn *c, uint32_t stream_id, uint8_t flags, struct msg_request *req);
/* Answer and free the call; `payload` (may be NULL) is stolen. */
void task_call_finish(struct task_call *call, int code, const char *msg, json_t *payload);
void task_call_finish_status(struct task_call *call, const struct status *st);
/* Answer OK with a flat payload (msg.h's msg_field list): the hot path of State. */
void task_call_finish_fields(
    struct task_call *call, const struct msg_field *fields, size_t nfields);
void task_call_free(struct task_call *call);

/*
 * The payload's id and optional exec_id, looked up (task_lookup); NULL after answering the
 * call with the error. *idp and *execp (may be NULL) point into the call's payload.
 */
struct task_proc *task_call_proc(struct task_call *call, const char **idp, const char **execp);
struct task_container *task_find(const char *id);
struct task_proc *task_find_proc(struct task_container *ctr, const char *exec_id);
/*
 * Look up id/exec_id for a method: NOT_FOUND if absent, FAILED_PRECONDITION "being created"
 * while its Create (or Exec) is in flight.
 */
struct task_proc *task_lookup(const char *id, const char *exec_id, struct status *st);
struct task_container *task_add(const char *id, const char *bundle);
struct task_proc *task_proc_new(struct task_container *ctr, const char *exec_id);
void task_proc_remove(struct task_proc *p);
void task_container_remove(struct task_container *ctr);
bool task_table_empty(void);
/* The exit and output of p may now both be complete: publish, answer the waiters. */
void task_proc_maybe_exit(struct task_proc *p);
/*
 * Loop thread (forward.c): more forwarded events are settled; answer the Waits held for
 * their /tasks/exit.
 */
void task_forward_progress(void);
/* A process that never ran is finished (Delete): answer its waiters, publish nothing. */
void task_proc_end_quiet(struct task_proc *p);
/* An exit or OOM event from the agent (loop thread). */
void task_agent_event(const char *topic, json_t *event);
/*
 * Loop thread, the shim is exiting: answer every parked Wait UNAVAILABLE ("the shim is
 * shutting down") and free the whole table (stdio torn down, descriptors closed).
 */
void task_shutdown(void);
/*
 * The agent link went down: parked Waits are in-flight calls, so they are answered
 * UNAVAILABLE with `why` (docs/CONTRACT.md 5.6); the processes stay as they are (the agent may come
 * back and report their exits). With a VM the shim launched (vm.launch "qemu") the Waits stay
 * parked: the VM's death (task_vm_lost) or the agent's return answers them.
 */
void task_agent_lost(const char *why);
/*
 * Loop thread: the agent link is (re)established: ask the agent (ProcessState) about every
 * process the shim believes running, and publish the exits it missed during the outage.
 */
void task_agent_resync(void);
/* Loop thread: does the VM report its processes' fate with the agent link down (launched)? */
bool task_vm_reports_exits(void);
/*
 * Loop thread: the VM itself is gone (vm.launch "qemu"): every process not yet exited is
 * reported exited with status 255 (its /tasks/exit once its stdio has ended), parked Waits
 * are answered with that.
 */
void task_vm_lost(const char *why);
/* The three above, for guest_init: how the agent link reports to the task table. */
extern const struct guest_ops task_guest_ops;
/* Loop thread: connection c closed; free the Waits it had parked. Returns how many. */
unsigned task_conn_closed(struct rpc_conn *c);
const char *task_status_name(const struct task_proc *p);
int task_timeout_ms(const struct msg_request *req);

/* task-*.c methods, all run on the loop thread */

void task_create(struct task_call *call);
void task_start(struct task_call *call);
void task_exec(struct task_call *call);
void task_delete(struct task_call *call);
void task_kill(struct task_call *call);
void task_pause(struct task_call *call);
void task_resume(struct task_call *call);
void task_update(struct task_call *call);
void task_resize_pty(struct task_call *call);
void task_close_io(struct task_call *call);
void task_wait(struct task_call *call);
void task_shutdown_method(struct task_call *call);
void task_state(struct task_call *call);
void task_pids(struct task_call *call);
void task_stats(struct task_call *call);
void task_connect(struct task_call *call);

/* task-control.c helper: a worker job that makes one agent call and answers with its result. */
void task_forward(struct task_call *call, const char *agent_method, json_t *agent_payload,
    void (*on_ok)(struct task_call *call, json_t *resp));

#define SHIM_VERSION PACKAGE_VERSION

#endif
