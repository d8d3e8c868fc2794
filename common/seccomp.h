/*
 * seccomp.h: self-confinement of vmshim and vmshim-agent with libseccomp (SPEC 9).
 *
 * main() calls seccomp_confine() once, after start-up (config read, sockets bound, every
 * thread it means to start at boot created), and logs seccomp_state() in its start-up line.
 * The filter is loaded with TSYNC, so it applies to every thread that already exists and to
 * every thread and child created later; it can never be removed. docs/SECCOMP.md explains
 * the two profiles and why each syscall is where it is.
 *
 * With configure --disable-seccomp (ENABLE_SECCOMP undefined) the functions still exist:
 * seccomp_confine() does nothing and returns 0, seccomp_state() says so, and
 * seccomp_available() returns false. Link with $(SECCOMP_CONF_LIBS).
 *
 * Not thread-safe: call these from the main thread during start-up (seccomp_state() may be
 * read from any thread once seccomp_confine() has returned).
 */
#ifndef VMSHIM_SECCOMP_H
#define VMSHIM_SECCOMP_H

#include <stdbool.h>

#include "status.h"

enum seccomp_profile {
	/*
	 * The shim: an allow-list. Anything not listed fails with EPERM; the dangerous set
	 * (execve, ptrace, mount, unshare, bpf, kexec_*, module loading, io_uring, ...)
	 * kills the whole process with SIGSYS. Threads only: no fork, no exec.
	 */
	SECCOMP_PROFILE_SHIM,
	/*
	 * The guest agent: a deny-list (everything else allowed), because the filter is
	 * inherited by runc and by the workloads the agent execs. Denied with EPERM: ptrace,
	 * process_vm_readv/writev, kexec_*, module loading, reboot, swapon/swapoff, iopl,
	 * ioperm, open_by_handle_at.
	 */
	SECCOMP_PROFILE_AGENT,
};

/*
 * Install the profile's filter on every thread of the process (SCMP_FLTATR_CTL_TSYNC).
 * Returns 0, or -1 with *st set (ST_FAILED_PRECONDITION when the kernel lacks seccomp
 * filters or TSYNC, ST_INTERNAL when libseccomp or the kernel refuses the filter). On
 * failure nothing is installed. Call at most once. A --disable-seccomp build returns 0.
 */
int seccomp_confine(enum seccomp_profile p, struct status *st);

/*
 * One phrase for the start-up log line, a static string:
 *   "on (allow-list, N syscalls)"      shim profile installed, N syscalls allowed
 *   "on (deny-list, N syscalls)"       agent profile installed, N syscalls denied
 *   "off (config)"                     seccomp_confine() has not succeeded (not called)
 *   "off (failed)"                     seccomp_confine() was called and failed
 *   "off (built with --disable-seccomp)"
 */
const char *seccomp_state(void);

/*
 * True when this build has seccomp and the running kernel supports filters with TSYNC, i.e.
 * when seccomp_confine() can succeed. Call it before seccomp_confine().
 */
bool seccomp_available(void);

#endif
