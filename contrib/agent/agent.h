/*
 * agent.h: vmshim-agent's internal header, in one section per file.
 *
 * The agent is one libevent loop thread (the main thread after start-up) that owns every
 * connection, every process and every container. Nothing here is thread-safe: all functions
 * run on the loop thread. Child processes (the workload and runner helpers such as runc) are
 * forked from the loop thread and reaped there through a signalfd for SIGCHLD, so no blocking
 * call ever runs on the loop.
 */
#ifndef VMSHIM_AGENT_H
#define VMSHIM_AGENT_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include "protocol.h"
#include "rpc.h"
#include "status.h"

#define AGENT_VERSION	     PACKAGE_VERSION
#define AGENT_MAX_MESSAGE    (4u * 1024 * 1024)
#define AGENT_HOST_PORT_BASE 1073741824u
#define AGENT_HANDSHAKE_MS   2000
#define AGENT_HELLO_MS	     10000
#define AGENT_START_WAIT_MS  5000
#define AGENT_DRAIN_GRACE_MS 5000
/*
 * After the reap, output may keep flowing (a descendant writing to the inherited pipe) for at
 * most this long, not counting time the shim's reader holds the stream paused; then the pipes
 * are detached so the exit is published (VMSHIM_TEST_DRAIN_MAX_MS shortens it for tests).
 */
#define AGENT_DRAIN_MAX_MS   30000
#define AGENT_HALF_CLOSED_MS 30000
#define AGENT_STREAM_PENDING (1u * 1024 * 1024)
#define AGENT_MOUNT_WAIT_MS  10000

/* ---- main.c ---- */

struct agent {
	struct event_base *base;
	const struct runner_ops *runner;
	const char *runtime;   /* runc path for the oci runner, else NULL */
	const char *state_dir; /* runner scratch files (pid files, runc root) */
	bool local_vm;	       /* --listen-uds: the embedded local VM */
	bool test_bringup_overlap;
	int test_span_hold_ms; /* VMSHIM_TEST_SPAN_HOLD_MS: MountDisk holds its span this long */
	int drain_max_ms;      /* AGENT_DRAIN_MAX_MS, or VMSHIM_TEST_DRAIN_MAX_MS */
	bool shutting_down;
	uint32_t control_port;
	uint32_t stream_port;
};

extern struct agent agent;

/* ---- listen.c ---- */

/* Listen on AF_VSOCK for both ports, or on one Unix socket with the hybrid handshake. */
int listen_vsock(uint32_t control_port, uint32_t stream_port, struct status *st);
int listen_uds(const char *path, struct status *st);
void listen_close(void);

/* ---- control.c (the control-*.c family's internal header: control.h) ---- */

/* Register control's observers (process events, the overlap switch's drop action). */
void control_init(void);
/* Take an accepted, non-blocking control connection (ownership of fd passes in). */
void control_accept(int fd);
/* Close every control connection (bring-up overlap switch, shutdown). */
void control_close_all(void);
void control_shutdown(void);

/* ---- stream.c (the stream-*.c family's internal header: stream.h) ---- */

struct stream;

/* Register the stream operations proc.c calls through struct proc_stream_ops. */
void stream_init(void);

/* Take an accepted, non-blocking stream connection (ownership of fd passes in). */
void stream_accept(int fd);
/* The functions below are what stream_init() registers as struct proc_stream_ops. */
/* stdin: the process is gone or CloseStdin was called: close its stdin after what is queued. */
void stream_close_input(struct stream *s);
/*
 * Output: give up on the pipe (a descendant holds it): read what it holds now, then close it
 * and queue EOF; proc_output_done() follows once the socket flushed. False if the pipe was
 * already closed (nothing to detach).
 */
bool stream_detach_output(struct stream *s);
/* Output: the pipe is open but not read because the socket is full (a slow reader). */
bool stream_output_paused(const struct stream *s);
/* Terminal under the oci runner: the pty master arrived (fd, a dup, passes in). */
void stream_set_pty(struct stream *s, int fd);
/* The process forgets the stream (deleted); the stream finishes on its own. */
void stream_orphan(struct stream *s);
void stream_close_all(void);

/* ---- proc*.c: proc.c, proc-stdio.c, proc-reap.c, proc-helper.c (internal: proc.h) ---- */

enum proc_state {
	PROC_CREATED,  /* prepared, waiting for StartProcess */
	PROC_STARTING, /* start in progress */
	PROC_RUNNING,
	PROC_EXITED,  /* reaped; exit not yet published (output draining) */
	PROC_STOPPED, /* exit published */
};

struct container;

struct proc {
	TAILQ_ENTRY(proc) entry;
	struct container *c;
	char *exec_id;	 /* "" for the init process */
	json_t *process; /* OCI process object (owned) */
	bool terminal;
	bool declared[STDIO_N];
	enum proc_state state;
	pid_t pid;
	int exit_status;
	struct timespec exited_at;

	/* The agent's ends: stdin write end, stdout/stderr read ends (-1 when none / handed). */
	int parent_fd[STDIO_N];
	/* The process's ends until the runner hands them over (-1 after). */
	int child_fd[STDIO_N];
	int pty_master; /* terminal: kept for ResizePty (oci: -1 until runc sent it) */
	int pty_slave;
	int pty_eof_pending; /* VEOFs owed to a master that has not arrived yet */
	bool ws_pending;     /* a ResizePty waits for the master */
	unsigned short ws_rows, ws_cols;

	struct stream *streams[STDIO_N];
	bool out_done[STDIO_N];
	bool stdin_close_requested;

	/* A parked StartProcess. */
	struct rpc_conn *start_conn;
	uint32_t start_sid;
	struct event *start_timer;
	struct event *grace_timer;
	/* Time spent draining after the reap while not paused (proc_grace_update). */
	int64_t drain_since_ms; /* start of the current unpaused stretch, -1 while paused */
	int64_t drain_used_ms;	/* earlier unpaused stretches */
	bool drain_capped;	/* drain_max_ms reached: detach the pipes */

	/* A runner helper (runc create/exec) will report the pid: see proc_claim_begin(). */
	bool claiming;
	uint64_t claim_seq;
	int unclaimed_wstatus; /* an exit reaped before the claim, delivered on a later turn */

	void *runner_data; /* owned by the runner */
	bool deleted;
	int refs;
};

TAILQ_HEAD(proc_list, proc);

struct container {
	TAILQ_ENTRY(container) entry;
	char *id;
	char *bundle;
	char *rootfs;	      /* CreateContainer's rootfs_mount ("" when none) */
	char *rootfs_mounted; /* local VM: where rootfs_mounts are mounted (rootfs.c), or NULL */
	char *oom_file;	      /* its cgroup's OOM-kill counter (stats_oom_file), or NULL */
	char *cgroup;	      /* real guest: its own cgroup (guest-env.c), or NULL */
	char **env_mounts;    /* real guest: what guest-env.c mounted in its root, in order */
	size_t n_env_mounts;
	uint64_t oom_kills; /* that count when last looked at */
	struct proc *init;
	struct proc_list procs; /* init first */
	void *runner_data;
	bool creating; /* CreateContainer's runner call is in flight */
	bool deleting; /* DeleteProcess of the init is in flight */
	bool deleted;
	int refs;
};

/*
 * What the process table reports to the control service (control.c registers it with
 * proc_observe(), so proc*.c call nothing of control). Every member is set.
 */
struct proc_observer {
	/* The exit status is in and every output stream is done: publish the exit. */
	void (*exited)(struct proc *p);
	/*
	 * The process was reaped but its output has not drained yet: tell the shim at once
	 * (PROTOCOL_TOPIC_EXIT_PENDING), so that a host side nobody reads cannot hold the exit
	 * forever: the shim starts its own drain deadline and, past it, discards the rest.
	 */
	void (*exit_pending)(struct proc *p);
	/* A stream attached to p: a parked StartProcess may go on. */
	void (*streams_changed)(struct proc *p);
	/* p is being removed: answer its parked StartProcess, if any. */
	void (*removed)(struct proc *p);
};

/* What the process table asks of the stream attached to one of its stdio (stream.c's). */
struct proc_stream_ops {
	void (*close_input)(struct stream *s);
	bool (*detach_output)(struct stream *s);
	bool (*output_paused)(const struct stream *s);
	void (*set_pty)(struct stream *s, int fd);
	void (*orphan)(struct stream *s);
};

int proc_init(struct status *st);
void proc_shutdown(void);
/* Register the observer / the stream operations (once, before the loop runs). */
void proc_observe(const struct proc_observer *obs);
void proc_set_stream_ops(const struct proc_stream_ops *ops);

struct container *container_find(const char *id);
struct container *container_new(const char *id, const char *bundle);
void container_ref(struct container *c);
void container_unref(struct container *c);
/* Remove from the table (deleting its processes); the last ref frees it. */
void container_remove(struct container *c);

/* ---- guest-env.c ---- */

/*
 * Real guest, before the init is forked: give c a cgroup of its own (spec.linux.resources
 * applied) and the spec's kernel filesystems in its root. On failure nothing is left.
 */
int guest_env_setup(struct container *c, json_t *spec, struct status *st);
/* Move a freshly forked process of c into c's cgroup (nothing without one). */
void guest_env_join(struct container *c, pid_t pid);
/* Apply OCI linux resources to c's cgroup; FAILED_PRECONDITION without one. */
int guest_env_update(struct container *c, json_t *resources, struct status *st);
/* Unmount what setup mounted, kill what is left in the cgroup and remove it. */
void guest_env_teardown(struct container *c);

/* ---- rootfs.c ---- */

/* Local VM: mount CreateContainer's rootfs_mounts (a JSON array) as c's root. */
int rootfs_mount(struct container *c, json_t *mounts, struct status *st);
/* Unmount and remove what rootfs_mount mounted (nothing if it did not). */
void rootfs_unmount(struct container *c);

/* exec_id "" finds the init process. */
struct proc *proc_find(struct container *c, const char *exec_id);
/* Allocate a process, create its stdio (pipes, pty or /dev/null). -1 with *st. */
struct proc *proc_new(struct container *c, const char *exec_id, json_t *process, bool terminal,
    const bool declared[STDIO_N], struct status *st);
void proc_ref(struct proc *p);
void proc_unref(struct proc *p);
void proc_remove(struct proc *p);
/* Close the process's ends of stdio in the agent (after they were given to a child). */
void proc_close_child_fds(struct proc *p);
/* The process has a pid and has not been reaped (it may still wait for its start). */
bool proc_is_live(const struct proc *p);
/* The pid is known (forked, or read from a pid file under a claim). */
void proc_set_pid(struct proc *p, pid_t pid);
/*
 * A runner helper (runc create / exec) is about to start p, whose pid it reports only when it
 * finishes: children reaped meanwhile that nobody knows are remembered for p, and forgotten
 * at proc_claim_end(). Without a claim, orphans reaped by the subreaper are not remembered.
 */
void proc_claim_begin(struct proc *p);
void proc_claim_end(struct proc *p);

/* A stream attaches: returns the pipe end it now owns (may be -1 = none) or -1 with *st. */
int proc_stream_attach(
    struct proc *p, enum stdio_kind k, struct stream *s, int *fd, struct status *st);
/* The stream attached by proc_stream_attach() is fully set up: act on the process's state. */
void proc_stream_activated(struct proc *p, enum stdio_kind k);
/* An output stream read bytes, paused or resumed: re-arm or stop the drain grace. */
void proc_grace_update(struct proc *p);
/* Terminal: make the reader of the pty see end of input (VEOF; twice after a partial line). */
void proc_pty_eof(struct proc *p, int master_fd, bool mid_line);
/* The runner obtained the terminal's master (oci: from runc); ownership passes in. */
void proc_set_pty_master(struct proc *p, int fd);
/* ResizePty: set the window size now, or once the master arrives. */
int proc_resize_pty(struct proc *p, uint32_t cols, uint32_t rows, struct status *st);
/* A stdin that ended before the master arrived: VEOF (twice after a partial line) follows it. */
void proc_pty_eof_later(struct proc *p, bool mid_line);
/* An output stream finished (all bytes and EOF flushed, or failed and drained). */
void proc_output_done(struct proc *p, enum stdio_kind k);
/* The stream object goes away. */
void proc_stream_gone(struct proc *p, enum stdio_kind k, struct stream *s);
bool proc_streams_ready(struct proc *p, enum stdio_kind *missing);
/* CloseStdin. */
void proc_close_stdin(struct proc *p);

/* Kill every live process (SIGKILL to its process group) and reap for up to timeout_ms. */
void proc_kill_all(int timeout_ms);

/* Helper children (runc, mount): callback when reaped and output captured. */
typedef void (*proc_helper_cb)(int wstatus, const char *output, size_t len, void *arg);
/*
 * Spawn argv with stdio fds (-1: stdin /dev/null; stdout/stderr captured into the output).
 * extra_fd (or -1) becomes fd 3 in the child. The callback runs on the loop when the helper
 * was reaped and its captured output reached EOF.
 */
pid_t proc_helper_spawn(char *const argv[], const int fds[3], int extra_fd, proc_helper_cb cb,
    void *arg, struct status *st);
/* Fork and run fn(arg) in the child; its return value is the exit code. */
pid_t proc_helper_fork(
    int (*fn)(void *), void *fnarg, proc_helper_cb cb, void *arg, struct status *st);
/* Exit status as containerd reports it: code, or 128+signal. */
int proc_wait_status(int wstatus);
/* Reset signal state in a freshly forked child (mask, SIGPIPE). */
void proc_child_reset_signals(void);

/* ---- runner-*.c (runner.h) ---- */

struct runner_ops;
extern const struct runner_ops runner_process_ops;
extern const struct runner_ops runner_oci_ops;

#endif
