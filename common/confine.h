/*
 * confine.h: self-confinement of vmshim and vmshim-agent with seccomp filters (libseccomp).
 *
 * main() calls confine_apply() once, after start-up (config read, sockets bound, every
 * thread it means to start at boot created), and logs confine_state() in its start-up line.
 * The filter is loaded with TSYNC, so it applies to every thread that already exists and to
 * every thread and child created later; it can never be removed. docs/SECCOMP.md explains
 * the two profiles and why each syscall is where it is.
 *
 * With configure --disable-seccomp (ENABLE_SECCOMP undefined) the functions still exist:
 * confine_apply() does nothing and returns 0, confine_state() says so, and
 * confine_available() returns false. Link with $(CONFINE_LIBS).
 *
 * Not thread-safe: call these from the main thread during start-up (confine_state() may be
 * read from any thread once confine_apply() has returned).
 */
#ifndef VMSHIM_CONFINE_H
#define VMSHIM_CONFINE_H

#include <stdbool.h>

#include "status.h"

enum confine_profile {
	/*
	 * The shim: an allow-list. Anything not listed fails with EPERM; the dangerous set
	 * (execve, ptrace, mount, unshare, bpf, kexec_*, module loading, io_uring, ...)
	 * kills the whole process with SIGSYS. Threads only: no fork, no exec.
	 */
	CONFINE_PROFILE_SHIM,
	/*
	 * The guest agent: a deny-list (everything else allowed), because the filter is
	 * inherited by runc and by the workloads the agent execs. Denied with EPERM: ptrace,
	 * process_vm_readv/writev, kexec_*, module loading, reboot, swapon/swapoff, iopl,
	 * ioperm, open_by_handle_at.
	 */
	CONFINE_PROFILE_AGENT,
};

/*
 * Install the profile's filter on every thread of the process (SCMP_FLTATR_CTL_TSYNC).
 * Returns 0, or -1 with *st set (ST_FAILED_PRECONDITION when the kernel lacks seccomp
 * filters or TSYNC, ST_INTERNAL when libseccomp or the kernel refuses the filter). On
 * failure nothing is installed. Call at most once. A --disable-seccomp build returns 0.
 */
int confine_apply(enum confine_profile p, struct status *st);

/*
 * One phrase for the start-up log line, a static string:
 *   "on (allow-list, N syscalls)"      shim profile installed, N syscalls allowed
 *   "on (deny-list, N syscalls)"       agent profile installed, N syscalls denied
 *   "off (config)"                     confine_apply() has not succeeded (not called)
 *   "off (failed)"                     confine_apply() was called and failed
 *   "off (built with --disable-seccomp)"
 */
const char *confine_state(void);

/*
 * True when this build has seccomp and the running kernel supports filters with TSYNC, i.e.
 * when confine_apply() can succeed. Call it before confine_apply().
 */
bool confine_available(void);

#endif
