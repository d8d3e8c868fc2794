/*
 * confine.c: the daemons' self-confinement with libseccomp (docs/SECCOMP.md).
 *
 * One call, confine_apply(), builds a filter for a profile and loads it with TSYNC so every
 * thread of the process gets it at once; nothing is kept afterwards but the phrase that
 * confine_state() returns. It runs once, on the main thread, after start-up. The libseccomp
 * context is a local released on every path (cleanup_confine).
 *
 * SHIM profile: an allow-list whose default is EPERM, so a rare libc path that needs an
 * unlisted syscall shows up as a logged error while the shim keeps serving its containers.
 * The dangerous set (starting programs, tracing, namespaces and mounts, kernel code and keys,
 * io_uring which bypasses the filter) kills the whole process with SIGSYS instead: the shim
 * never calls them, so a call means the process is no longer running our code. Threads only:
 * clone needs CLONE_THREAD and no CLONE_NEW*, clone3 fails with ENOSYS so glibc falls back.
 *
 * AGENT profile: a deny-list whose default is ALLOW, with EPERM for the denied calls, because
 * the filter is inherited by runc and by every workload the agent execs (which need mount,
 * unshare, setns, execve, ...); see docs/SECCOMP.md.
 *
 * Sanitizer builds: LeakSanitizer's exit-time leak check clones a tracer task
 * (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED) that ptrace-attaches to every thread,
 * so ASan builds also allow that clone and the ptrace requests the tracer uses; every other
 * ptrace request stays refused. These are test builds, never shipped.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef ENABLE_SECCOMP
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/vm_sockets.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>
#endif

#include "confine.h"
#include "status.h"
#include "util.h"

#define SECCOMP_OFF_BUILD  "off (built with --disable-seccomp)"
#define SECCOMP_OFF_CONFIG "off (config)"
#define SECCOMP_OFF_FAILED "off (failed)"

#ifdef ENABLE_SECCOMP

#if defined(__SANITIZE_ADDRESS__)
#define SECCOMP_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define SECCOMP_LSAN 1
#endif
#endif

/* Written once by confine_apply() on the main thread; read by confine_state(). */
static char confine_state_buf[48];
static const char *confine_state_str = SECCOMP_OFF_CONFIG;

/* Namespace-creating clone flags (CLONE_NEWTIME is left out: it shares bits with CSIGNAL). */
#define SECCOMP_CLONE_NEW                                                                          \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |             \
	    CLONE_NEWPID | CLONE_NEWNET)

/* The flags LeakSanitizer's StopTheWorld passes to clone for its tracer task. */
#define SECCOMP_LSAN_CLONE (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED)

/*
 * The shim may call these with any arguments. Grouped by what needs them; names this
 * architecture lacks (open, stat, ... on aarch64) are skipped.
 */
static const char *const seccomp_shim_allow[] = {
    /* descriptors and file I/O */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "flock", "fsync",
    "fdatasync", "ftruncate", "truncate", "fallocate", "fadvise64", "sendfile", "splice", "tee",
    /* files and directories (the runtime dir, FIFOs, logs, /proc/self for sanitizers) */
    "open", "openat", "creat", "stat", "lstat", "fstat", "newfstatat", "statx", "statfs", "fstatfs",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64",
    "getcwd", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "chmod", "fchmod", "fchmodat", "umask", "utimensat", "inotify_init1", "inotify_add_watch",
    "inotify_rm_watch",
    /* memory */
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "msync", "membarrier",
    /* sockets (socket and socketpair are restricted by domain below) */
    "connect", "accept", "accept4", "bind", "listen", "getsockopt", "setsockopt", "getsockname",
    "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    /* polling and event descriptors (libevent) */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "signalfd", "signalfd4", "pipe", "pipe2",
    /* time */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "times", "getitimer", "setitimer", "alarm",
    /* threads and synchronisation (clone is restricted below) */
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "set_tid_address", "rseq",
    "sched_yield", "sched_getaffinity", "sched_getparam", "sched_getscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "arch_prctl", "exit", "exit_group",
    /* signals; kill because the shim signals what it left behind on delete */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigsuspend", "sigaltstack", "pause", "kill", "tgkill", "tkill",
    /* identity and process information */
    "getpid", "gettid", "getppid", "getpgrp", "getpgid", "getsid", "getuid", "geteuid", "getgid",
    "getegid", "getresuid", "getresgid", "getgroups", "capget", "uname", "sysinfo", "getrusage",
    "getrlimit", "setrlimit", "getcpu", "getpriority", "prctl", "wait4", "waitid", "getrandom",
    "restart_syscall"};

/*
 * The shim's hot calls, most frequent first (strace -c of the stdio data plane and of the
 * control loop): the filter tests them before anything else, so the call the daemon makes
 * thousands of times a second is matched by its first comparisons, not after a hundred.
 */
static const char *const seccomp_shim_hot[] = {"splice", "epoll_wait", "epoll_ctl", "read", "ioctl",
    "write", "sendmsg", "sendto", "readv", "writev", "recvfrom", "futex", "poll"};

/*
 * Never legitimate in the shim: a call kills the process (SIGSYS). Also refused in the
 * sanitizer build, except ptrace, which is handled in confine_add_ptrace().
 */
static const char *const seccomp_shim_kill[] = {"execve", "execveat", "ptrace", "process_vm_readv",
    "process_vm_writev", "pidfd_getfd", "mount", "umount", "umount2", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "pivot_root", "chroot",
    "unshare", "setns", "bpf", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "keyctl", "add_key", "request_key", "swapon", "swapoff", "reboot",
    "perf_event_open", "userfaultfd", "open_by_handle_at", "personality", "iopl", "ioperm",
    "io_uring_setup", "io_uring_enter", "io_uring_register"};

/*
 * Refused (EPERM) in the agent and, through inheritance, in runc and the workloads: nothing
 * in a container VM's guest needs them, and each hands out the whole guest kernel.
 */
static const char *const seccomp_agent_deny[] = {"ptrace", "process_vm_readv", "process_vm_writev",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "iopl", "ioperm", "open_by_handle_at"};

/* ioctl requests the shim may make: readable bytes, blocking and CLOEXEC, terminal size. */
static const unsigned long confine_shim_ioctls[] = {FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, TCGETS,
    TIOCGWINSZ, TIOCSWINSZ, IOCTL_VM_SOCKETS_GET_LOCAL_CID};

#ifdef SECCOMP_LSAN
/* The ptrace requests LeakSanitizer's tracer task makes (sanitizer builds only). */
static const long confine_lsan_ptrace_ok[] = {PTRACE_ATTACH, PTRACE_DETACH, PTRACE_CONT,
    PTRACE_KILL, PTRACE_GETREGS, PTRACE_GETFPREGS, PTRACE_GETREGSET};
/* The ptrace requests that act on a tracee: still refused in sanitizer builds. */
static const long confine_ptrace_bad[] = {PTRACE_TRACEME, PTRACE_PEEKTEXT, PTRACE_PEEKDATA,
    PTRACE_PEEKUSER, PTRACE_POKETEXT, PTRACE_POKEDATA, PTRACE_POKEUSER, PTRACE_SINGLESTEP,
    PTRACE_SETREGS, PTRACE_SETFPREGS, PTRACE_SYSCALL, PTRACE_SETOPTIONS, PTRACE_SETREGSET,
    PTRACE_SEIZE, PTRACE_SETSIGINFO, PTRACE_INTERRUPT};
#endif

/* Release a libseccomp context when the local goes out of scope. */
static void
confine_ctx_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx != NULL)
		seccomp_release(*ctx);
}
#define cleanup_confine __attribute__((cleanup(confine_ctx_releasep)))

/*
 * Add one rule for a syscall named in a table. Returns 1 when added, 0 when this
 * architecture has no such syscall or the action is the filter's default (libseccomp
 * refuses such a rule; the default does the job), or -1 with *st.
 */
static int
confine_add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned ncmp,
    const struct scmp_arg_cmp *cmp, struct status *st)
{
	uint32_t def = 0;
	int nr, r;

	nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return 0;
	if (seccomp_attr_get(ctx, SCMP_FLTATR_ACT_DEFAULT, &def) == 0 && def == action)
		return 0;
	r = seccomp_rule_add_array(ctx, action, nr, ncmp, cmp);
	if (r < 0)
		return status_errno(st, ST_INTERNAL, -r, "seccomp rule for %s", name);
	return 1;
}

/* Add the same unconditional action for each name; *count gets the names added. */
static int
confine_add_list(scmp_filter_ctx ctx, uint32_t action, const char *const *names, size_t n,
    unsigned *count, struct status *st)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		if ((r = confine_add(ctx, action, names[i], 0, NULL, st)) < 0)
			return -1;
		*count += (unsigned)r;
	}
	return 0;
}

/* One comparison of argument `arg`, for the tables of allowed values below. */
static struct scmp_arg_cmp
confine_cmp(unsigned arg, enum scmp_compare op, uint64_t a, uint64_t b)
{
	struct scmp_arg_cmp c = {.arg = arg, .op = op, .datum_a = a, .datum_b = b};

	return c;
}

/*
 * ptrace gets `bad_action`. In LSan builds only the requests that act on a tracee do; the
 * tracer's requests are allowed when `allow_lsan` (the shim; the agent allows them by
 * default) and the rest fall to the default action.
 */
static int
confine_add_ptrace(scmp_filter_ctx ctx, uint32_t bad_action, bool allow_lsan, struct status *st)
{
#ifdef SECCOMP_LSAN
	struct scmp_arg_cmp c;

	for (size_t i = 0; i < ARRAY_SIZE(confine_ptrace_bad); i++) {
		c = confine_cmp(0, SCMP_CMP_EQ, (uint64_t)confine_ptrace_bad[i], 0);
		if (confine_add(ctx, bad_action, "ptrace", 1, &c, st) < 0)
			return -1;
	}
	for (size_t i = 0; allow_lsan && i < ARRAY_SIZE(confine_lsan_ptrace_ok); i++) {
		c = confine_cmp(0, SCMP_CMP_EQ, (uint64_t)confine_lsan_ptrace_ok[i], 0);
		if (confine_add(ctx, SCMP_ACT_ALLOW, "ptrace", 1, &c, st) < 0)
			return -1;
	}
	return 0;
#else
	(void)allow_lsan;
	return confine_add(ctx, bad_action, "ptrace", 0, NULL, st) < 0 ? -1 : 0;
#endif
}

/* The shim's allow-list, its argument-restricted calls and its kill set. */
static int
confine_build_shim(scmp_filter_ctx ctx, uint32_t kill, unsigned *allowed, struct status *st)
{
	const uint64_t u32 = 0xffffffffu;
	struct scmp_arg_cmp c;
	int r;

	if (confine_add_list(ctx, SCMP_ACT_ALLOW, seccomp_shim_allow,
		ARRAY_SIZE(seccomp_shim_allow), allowed, st) < 0)
		return -1;

	/* Threads only: CLONE_THREAD set, no namespace flag. */
	c = confine_cmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD | SECCOMP_CLONE_NEW, CLONE_THREAD);
	if (confine_add(ctx, SCMP_ACT_ALLOW, "clone", 1, &c, st) < 0)
		return -1;
	(*allowed)++;
#ifdef SECCOMP_LSAN
	c = confine_cmp(0, SCMP_CMP_EQ, SECCOMP_LSAN_CLONE, 0);
	if (confine_add(ctx, SCMP_ACT_ALLOW, "clone", 1, &c, st) < 0)
		return -1;
#endif
	/* clone3 hides its flags in memory the filter cannot read: ENOSYS makes glibc use clone. */
	if (confine_add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, st) < 0)
		return -1;

	/* The kernel compares the low 32 bits of an ioctl request; so do we. */
	for (size_t i = 0; i < ARRAY_SIZE(confine_shim_ioctls); i++) {
		c = confine_cmp(1, SCMP_CMP_MASKED_EQ, u32, confine_shim_ioctls[i] & u32);
		if (confine_add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &c, st) < 0)
			return -1;
	}
	(*allowed)++;

	/* Local sockets only: Unix (control socket, FIFOs' peers, QMP, hybrid vsock) and vsock. */
	c = confine_cmp(0, SCMP_CMP_EQ, AF_UNIX, 0);
	if (confine_add(ctx, SCMP_ACT_ALLOW, "socket", 1, &c, st) < 0)
		return -1;
	c = confine_cmp(0, SCMP_CMP_EQ, AF_VSOCK, 0);
	if (confine_add(ctx, SCMP_ACT_ALLOW, "socket", 1, &c, st) < 0)
		return -1;
	c = confine_cmp(0, SCMP_CMP_EQ, AF_UNIX, 0);
	if (confine_add(ctx, SCMP_ACT_ALLOW, "socketpair", 1, &c, st) < 0)
		return -1;
	*allowed += 2;

	/* mkfifo, never a device node (the shim may run as root). */
	c = confine_cmp(1, SCMP_CMP_MASKED_EQ, S_IFMT, S_IFIFO);
	if ((r = confine_add(ctx, SCMP_ACT_ALLOW, "mknod", 1, &c, st)) < 0) /* not on aarch64 */
		return -1;
	*allowed += (unsigned)r;
	c = confine_cmp(2, SCMP_CMP_MASKED_EQ, S_IFMT, S_IFIFO);
	if (confine_add(ctx, SCMP_ACT_ALLOW, "mknodat", 1, &c, st) < 0)
		return -1;
	(*allowed)++;

	/* Resource limits of this process only (glibc's getrlimit is prlimit64(0, ...)). */
	c = confine_cmp(0, SCMP_CMP_EQ, 0, 0);
	if (confine_add(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, &c, st) < 0)
		return -1;
	(*allowed)++;

#ifdef SECCOMP_LSAN
	(*allowed)++; /* ptrace, for the tracer's requests */
#endif
	if (confine_add_ptrace(ctx, kill, true, st) < 0)
		return -1;
	/* A hint to libseccomp's layout of the filter (higher first): never fatal. */
	for (size_t i = 0; i < ARRAY_SIZE(seccomp_shim_hot); i++) {
		int nr = seccomp_syscall_resolve_name(seccomp_shim_hot[i]);

		if (nr != __NR_SCMP_ERROR)
			(void)seccomp_syscall_priority(ctx, nr, (uint8_t)(255 - i));
	}
	for (size_t i = 0; i < ARRAY_SIZE(seccomp_shim_kill); i++) {
		if (strcmp(seccomp_shim_kill[i], "ptrace") == 0)
			continue;
		if (confine_add(ctx, kill, seccomp_shim_kill[i], 0, NULL, st) < 0)
			return -1;
	}
	return 0;
}

/* The agent's deny-list, on the native and compat architectures (32-bit workloads). */
static int
confine_build_agent(scmp_filter_ctx ctx, unsigned *denied, struct status *st)
{
	const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
	uint32_t compat[2] = {0, 0};
	int r;

	switch (seccomp_arch_native()) {
	case SCMP_ARCH_X86_64:
		compat[0] = SCMP_ARCH_X86;
		compat[1] = SCMP_ARCH_X32;
		break;
	case SCMP_ARCH_AARCH64:
		compat[0] = SCMP_ARCH_ARM;
		break;
	}
	for (size_t i = 0; i < ARRAY_SIZE(compat) && compat[i] != 0; i++) {
		r = seccomp_arch_add(ctx, compat[i]);
		if (r < 0 && r != -EEXIST)
			return status_errno(st, ST_INTERNAL, -r, "seccomp_arch_add");
	}

	if (confine_add_ptrace(ctx, deny, false, st) < 0)
		return -1;
	(*denied)++;
	for (size_t i = 0; i < ARRAY_SIZE(seccomp_agent_deny); i++) {
		if (strcmp(seccomp_agent_deny[i], "ptrace") == 0)
			continue;
		if ((r = confine_add(ctx, deny, seccomp_agent_deny[i], 0, NULL, st)) < 0)
			return -1;
		*denied += (unsigned)r;
	}
	return 0;
}

/* Whether this process has CAP_SYS_ADMIN, so it may load a filter without NO_NEW_PRIVS. */
static bool
confine_have_sys_admin(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};

	if (syscall(SYS_capget, &hdr, data) != 0)
		return false;
	return (data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN)) != 0;
}

bool
confine_available(void)
{
	static int avail = -1;

	/* libseccomp probes the kernel with seccomp(2): cache it before a filter forbids that. */
	if (avail < 0)
		avail = seccomp_api_get() >= 2;
	return avail == 1;
}

int
confine_apply(enum confine_profile p, struct status *st)
{
	cleanup_confine scmp_filter_ctx ctx = NULL;
	uint32_t kill, def;
	unsigned count = 0;
	int r;

	/* A failure leaves nothing installed, unless an earlier call succeeded. */
	if (confine_state_str != confine_state_buf)
		confine_state_str = SECCOMP_OFF_FAILED;
	if (!confine_available())
		return status_set(st, ST_FAILED_PRECONDITION,
		    "seccomp: the kernel lacks seccomp filters with TSYNC");
	/* KILL_PROCESS needs API level 3 (Linux 4.14); before that a refusal is all we have. */
	kill = seccomp_api_get() >= 3 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ERRNO(EPERM);
	def = p == CONFINE_PROFILE_SHIM ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_ALLOW;

	if ((ctx = seccomp_init(def)) == NULL)
		return status_set(st, ST_INTERNAL, "seccomp_init failed");
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0)
		return status_errno(st, ST_INTERNAL, -r, "seccomp: TSYNC");
	/* Refusals go to the audit log where the kernel can: an unexpected EPERM is visible. */
	if (seccomp_api_get() >= 3)
		(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);

	if (p == CONFINE_PROFILE_SHIM) {
		/* A syscall from another ABI (int 0x80, x32) is an attack: same fate as execve. */
		if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, kill)) < 0)
			return status_errno(st, ST_INTERNAL, -r, "seccomp: bad-arch action");
		if (confine_build_shim(ctx, kill, &count, st) < 0)
			return status_wrap(st, "seccomp shim profile");
	} else {
		/*
		 * NO_NEW_PRIVS is inherited across exec and would stop setuid and file
		 * capabilities in the workloads: keep it off when we are allowed to.
		 */
		if (confine_have_sys_admin() &&
		    (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
			return status_errno(st, ST_INTERNAL, -r, "seccomp: NNP");
		if (confine_build_agent(ctx, &count, st) < 0)
			return status_wrap(st, "seccomp agent profile");
	}

	if ((r = seccomp_load(ctx)) < 0)
		return status_errno(st, ST_INTERNAL, -r, "seccomp_load");
	snprintf(confine_state_buf, sizeof confine_state_buf, "on (%s, %u syscalls)",
	    p == CONFINE_PROFILE_SHIM ? "allow-list" : "deny-list", count);
	confine_state_str = confine_state_buf;
	return 0;
}

const char *
confine_state(void)
{
	return confine_state_str;
}

#else /* !ENABLE_SECCOMP */

bool
confine_available(void)
{
	return false;
}

int
confine_apply(enum confine_profile p, struct status *st)
{
	(void)p;
	(void)st;
	return 0;
}

const char *
confine_state(void)
{
	return SECCOMP_OFF_BUILD;
}

#endif /* ENABLE_SECCOMP */
