/*
 * runner-oci.h: the internal header of the oci runner, shared by runner-oci*.c only.
 *
 * runner-oci.c holds the runner's methods (struct runner_ops) and the per-container state;
 * runner-oci-run.c runs one runtime command for them (ro_run). Loop thread only.
 */
#ifndef VMSHIM_AGENT_RUNNER_OCI_H
#define VMSHIM_AGENT_RUNNER_OCI_H

#include <ftw.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include "agent.h"
#include "runner.h"

/* A container's runner_data. */
struct ro_container {
	char *dir;
	char *bundle;
};

/* One runtime command in flight (runner-oci-run.c owns it; ro_remove borrows its fields). */
struct ro_call {
	struct container *c;
	struct proc *p;
	const char *what;
	runner_cb done;
	void *arg;
	char *pid_file; /* read on success */
	char *log;	/* this command's own log file (removed when done) */
	bool want_json; /* pass stdout as parsed JSON */
	bool claim;	/* p is under a pid claim until the command is done */

	/* --console-socket: listener, then the accepted connection, then the master. */
	char *con_path;	      /* the listener's path (NULL once removed) */
	int con_listen;	      /* -1 once closed */
	int con_conn;	      /* the accepted connection (-1: none) */
	struct event *con_ev; /* on con_listen, then on con_conn */
	int con_master;	      /* the received pty master (-1: none yet) */
	char con_err[256];    /* why no master came (a bad message), "" if none */
	bool console;	      /* the master is still awaited (console deadline applies) */

	struct event *timer;	/* the console / command deadline (NULL: not armed yet) */
	struct timeval started; /* when the command was spawned (monotonic) */
	char timeout_msg[256];	/* the deadline passed, the runtime was killed: why */
	pid_t pid;		/* the runtime command (its process group) */
};

/* nftw callback: remove one entry. */
int ro_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw);
/*
 * Run `runtime --root R --log L --log-format json args...` for c (and p) with stdio fds (or
 * NULL); with console, `--console-socket PATH` follows args[0] (the subcommand) and the master
 * is received. The pid is read from pid_file (owned from here on) under a claim of p; done(arg)
 * runs once, with stdout as JSON when want_json.
 */
void ro_run(struct container *c, struct proc *p, const char *what, const char *const *args,
    const int fds[3], char *pid_file, bool want_json, bool console, runner_cb done, void *arg);

#endif
