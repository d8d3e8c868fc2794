/*
 * vm-qemu.c: a real microVM per group (vm.launch "qemu").
 *
 * Runs on the daemon's main thread before any other thread exists and before seccomp (fork
 * and execve are refused afterwards). vm_qemu_start() launches, in the shim's state directory
 * (0700):
 *   1. vmshim-vsock (beside vmshim, else in the build tree's contrib/vsock, else on PATH), the
 *      vhost-user-vsock backend: vhost-user socket STATE/vu.sock, the guest's vsock exposed as
 *      the hybrid socket STATE/v.sock, guest CID 3 (each VM has a backend of its own, so CIDs
 *      never meet), its log in STATE/vsock.log. It renames its sockets into place once they
 *      listen, so STATE/vu.sock appearing means QEMU may connect (QEMU does not reconnect);
 *   0. the root filesystem share STATE/share and its mounter (vm-share.c);
 *   2. QEMU: q35 with a shared memfd memory backend (vhost-user needs the guest's memory as
 *      fds), vhost-user-vsock-pci on STATE/vu.sock, STATE/share as virtio-9p, one pcie-root-port
 * per vm.hotplug_ports entry, a QMP server the shim owns (vm.qmp, else STATE/qmp.sock), -accel from
 * vm.accel, vm.cpus, vm.memory_mib, vm.kernel and vm.initrd (default: the installed guest image),
 *      the serial console in STATE/console.log and QEMU's own output in STATE/qemu.log;
 *   2a. moves QEMU, the backend and the mounter into the pod's cgroup (vm-cgroup.c);
 *   3. then waits, within vm.boot_timeout_ms, until the agent answers a hybrid-vsock
 *      handshake on its control port through STATE/v.sock.
 * Both children ask for a signal when the shim dies (PR_SET_PDEATHSIG: SIGKILL for QEMU,
 * SIGTERM for the backend, which then removes its sockets), and their pids are written to
 * STATE/qemu.pid and STATE/vsock.pid for `vmshim delete`. A failure returns one line naming
 * the step (with the tail of QEMU's output or of the console) after killing and reaping
 * whatever was started.
 *
 * vm.accel "auto" picks KVM only on hardware virtualization: /dev/kvm opens read-write and
 * the kvm_intel or kvm_amd module is loaded. A /dev/kvm from another provider (kvm_pvm, which
 * runs only kernels built for it) makes "auto" choose TCG.
 *
 * After start-up the loop thread learns of a child's death through SIGCHLD (vm_qemu_reap,
 * waitpid WNOHANG on the two pids, both allowed by the seccomp profile): the VM is then gone
 * and every task is reported exited (loop.c). vm_qemu_stop() (after the loop and every thread
 * have ended) SIGTERMs QEMU and the backend, SIGKILLs what is left after a grace period,
 * reaps both, stops the mounter and removes the state directory. vm_qemu_cleanup() is `vmshim
 * delete`'s part: it kills the processes a SIGKILLed shim left, each only if its command line still
 * names this state directory's sockets (a reused pid is left alone).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"
#include "util.h"

#define VM_QEMU_STOP_GRACE_MS 3000
#define VM_QEMU_POLL_MAX_MS   50
#define VM_QEMU_CID	      3
#define VM_QEMU_TAIL_BYTES    160
#define VM_QEMU_ARGV_MAX      (64 + 4 * 256)

static struct {
	pid_t qemu;		  /* until reaped */
	pid_t vsock;		  /* until reaped */
	char *dir;		  /* the state directory, removed by vm_qemu_stop */
	char why[STATUS_MSG_MAX]; /* what ended the VM, once it ended */
} vq = {.qemu = -1, .vsock = -1};

/* vmshim-vsock beside our binary, in the build tree (shim/../contrib/vsock), else on PATH. */
static char *
vm_qemu_backend_path(void)
{
	char self[PATH_MAX], *slash, *out = NULL;
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			cleanup_free char *tree = NULL;

			*slash = '\0';
			if (util_find_in(*self ? self : "/", "vmshim-vsock", &out))
				return out;
			xasprintf(&tree, "%s/../contrib/vsock", self);
			if (util_find_in(tree, "vmshim-vsock", &out))
				return out;
		}
	}
	return util_which("vmshim-vsock", false);
}

/* vm.accel "auto": hardware KVM (kvm_intel / kvm_amd loaded, /dev/kvm usable), else TCG. */
static const char *
vm_qemu_accel(const struct shim_config *cfg, const char **why)
{
	int fd;

	if (strcmp(cfg->vm_accel, "auto") != 0) {
		*why = "vm.accel";
		return cfg->vm_accel;
	}
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		*why = "auto: /dev/kvm is not usable";
		return "tcg";
	}
	close(fd);
	if (access("/sys/module/kvm_intel", F_OK) == 0 ||
	    access("/sys/module/kvm_amd", F_OK) == 0) {
		*why = "auto: hardware KVM";
		return "kvm";
	}
	*why = "auto: /dev/kvm is not hardware KVM (no kvm_intel or kvm_amd module)";
	return "tcg";
}

/* The last bytes of a file as one line ("|" between its lines), into buf. */
static const char *
vm_qemu_tail(const char *path, char *buf, size_t len)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;
	size_t want = len - 1 < VM_QEMU_TAIL_BYTES ? len - 1 : VM_QEMU_TAIL_BYTES;
	char *p, *w;

	snprintf(buf, len, "(empty)");
	if (fd < 0 || (size = lseek(fd, 0, SEEK_END)) < 0)
		return buf;
	if (lseek(fd, size > (off_t)want ? size - (off_t)want : 0, SEEK_SET) < 0 ||
	    (n = read(fd, buf, want)) <= 0)
		return buf;
	buf[n] = '\0';
	/* Printable ASCII only, newlines as " | ", runs of blanks collapsed. */
	for (p = w = buf; *p != '\0'; p++) {
		char c = (*p == '\n' || *p == '\r') ? '|' : (*p < 0x20 || *p > 0x7e) ? ' ' : *p;

		if (c == '|' && (w == buf || w[-1] == '|'))
			continue;
		if (c == ' ' && (w == buf || w[-1] == ' ' || w[-1] == '|'))
			continue;
		*w++ = c;
	}
	while (w > buf && (w[-1] == '|' || w[-1] == ' '))
		w--;
	*w = '\0';
	if (buf[0] == '\0')
		snprintf(buf, len, "(empty)");
	return buf;
}

/* Child side of a fork: stdout/stderr to out_path, the death signal, exec; else _exit(127). */
static void __attribute__((noreturn))
vm_qemu_exec(char *const argv[], const char *out_path, int deathsig, pid_t parent)
{
	sigset_t none;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (prctl(PR_SET_PDEATHSIG, deathsig) < 0 || getppid() != parent)
		_exit(127);
	if (null < 0 || out < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(out, STDERR_FILENO) < 0)
		_exit(127);
	/* A new process group: a terminal's ^C for a foreground shim is the shim's to handle. */
	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], argv);
	dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static pid_t
vm_qemu_spawn(char *const argv[], const char *out_path, int deathsig, struct status *st)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0) {
		status_errno(st, ST_INTERNAL, errno, "vm.launch qemu: fork");
		return -1;
	}
	if (pid == 0)
		vm_qemu_exec(argv, out_path, deathsig, parent);
	return pid;
}

static int
vm_qemu_write_pid(const char *dir, const char *name, pid_t pid, struct status *st)
{
	cleanup_free char *path = NULL;
	cleanup_close int fd = -1;
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%ld\n", (long)pid);

	xasprintf(&path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, buf, (size_t)n) < 0)
		return status_errno(st, ST_INTERNAL, errno, "vm.launch qemu: %s", path);
	return 0;
}

/* Describe how a child ended ("exited with status N" / "was killed by signal N"). */
static void
vm_qemu_describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(buf, len, "was killed by signal %d",
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Has one of the two children ended? Reaps it and says which in *st. */
static bool
vm_qemu_child_ended(const char *step, struct status *st)
{
	char how[64], tail[VM_QEMU_TAIL_BYTES + 1], ctail[VM_QEMU_TAIL_BYTES + 1];
	cleanup_free char *qlog = NULL, *vlog = NULL, *con = NULL;
	int status;

	xasprintf(&qlog, "%s/qemu.log", vq.dir);
	xasprintf(&vlog, "%s/vsock.log", vq.dir);
	xasprintf(&con, "%s/console.log", vq.dir);
	if (vq.qemu > 0 && waitpid(vq.qemu, &status, WNOHANG) == vq.qemu) {
		vq.qemu = -1;
		vm_qemu_describe(status, how, sizeof how);
		status_set(st, ST_UNAVAILABLE, "vm.launch qemu: %s: QEMU %s: %s; console: %s", step,
		    how, vm_qemu_tail(qlog, tail, sizeof tail),
		    vm_qemu_tail(con, ctail, sizeof ctail));
		return true;
	}
	if (vq.vsock > 0 && waitpid(vq.vsock, &status, WNOHANG) == vq.vsock) {
		vq.vsock = -1;
		vm_qemu_describe(status, how, sizeof how);
		status_set(st, ST_UNAVAILABLE, "vm.launch qemu: %s: vmshim-vsock %s: %s", step, how,
		    vm_qemu_tail(vlog, tail, sizeof tail));
		return true;
	}
	return false;
}

/* Step 1: the backend, listening once STATE/vu.sock exists. */
static int
vm_qemu_start_backend(const char *dir, int64_t deadline, bool debug, struct status *st)
{
	cleanup_free char *bin = vm_qemu_backend_path(), *vu = NULL, *uds = NULL, *log = NULL;
	cleanup_free char *out = NULL;
	char cid[16], *argv[16];
	size_t n = 0;
	int nap = 1;

	if (bin == NULL)
		return status_set(st, ST_FAILED_PRECONDITION,
		    "vm.launch qemu: vmshim-vsock not found beside vmshim nor on PATH");
	xasprintf(&vu, "%s/vu.sock", dir);
	xasprintf(&uds, "%s/v.sock", dir);
	xasprintf(&log, "%s/vsock.log", dir);
	xasprintf(&out, "%s/vsock.out", dir);
	snprintf(cid, sizeof cid, "%u", VM_QEMU_CID);
	unlink(vu);
	unlink(uds);
	argv[n++] = bin;
	argv[n++] = "--vhost-user";
	argv[n++] = vu;
	argv[n++] = "--uds";
	argv[n++] = uds;
	argv[n++] = "--cid";
	argv[n++] = cid;
	argv[n++] = "--log";
	argv[n++] = log;
	if (debug)
		argv[n++] = "--debug";
	argv[n] = NULL;
	vq.vsock = vm_qemu_spawn(argv, out, SIGTERM, st);
	if (vq.vsock < 0 || vm_qemu_write_pid(dir, "vsock.pid", vq.vsock, st) < 0)
		return -1;
	log_info("microVM: started %s (pid %ld) on %s", bin, (long)vq.vsock, uds);
	while (access(vu, F_OK) < 0) {
		if (vm_qemu_child_ended("starting the vsock backend", st))
			return -1;
		if (time_mono_ms() >= deadline)
			return status_set(st, ST_DEADLINE_EXCEEDED,
			    "vm.launch qemu: vmshim-vsock did not listen on %s within "
			    "vm.boot_timeout_ms",
			    vu);
		poll(NULL, 0, nap);
		if (nap < VM_QEMU_POLL_MAX_MS)
			nap *= 2;
	}
	return 0;
}

/*
 * Test-only knob (logged): VMSHIM_TEST_GUEST_APPEND adds words to the guest kernel's
 * command line (e.g. vmshim.test_bringup_overlap=1 for the guest's agent).
 */
static const char *
vm_qemu_test_append(void)
{
	const char *v = getenv("VMSHIM_TEST_GUEST_APPEND");

	if (v == NULL || *v == '\0')
		return "";
	log_warn(
	    "test override: guest kernel command line += \"%s\" (VMSHIM_TEST_GUEST_APPEND)", v);
	return v;
}

/*
 * QEMU reads its option strings as comma-separated key=value lists: a root port id must be a
 * QEMU id (a letter, then letters, digits, '-', '.', '_'), and a path given inside an option
 * must not hold a comma.
 */
static int
vm_qemu_check_words(const struct shim_config *cfg, const char *dir, struct status *st)
{
	for (size_t i = 0; i < cfg->n_hotplug_ports; i++) {
		const char *id = cfg->hotplug_ports[i];

		if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z')) ||
		    strspn(
			id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") !=
			strlen(id))
			return status_set(st, ST_INVALID_ARGUMENT,
			    "vm.launch qemu: vm.hotplug_ports[%zu] \"%s\" is not a QEMU id", i, id);
	}
	if (strchr(dir, ',') != NULL || strchr(cfg->vm_qmp, ',') != NULL)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "vm.launch qemu: the state directory %s or vm.qmp %s holds a ',', which QEMU's "
		    "options cannot carry",
		    dir, cfg->vm_qmp);
	return 0;
}

/* Step 2: QEMU. */
static int
vm_qemu_start_qemu(const struct shim_config *cfg, const char *dir, struct status *st)
{
	cleanup_free char *bin = util_which(cfg->vm_qemu, false), *m = NULL, *mem = NULL,
			  *smp = NULL;
	cleanup_free char *kernel = NULL, *initrd = NULL, *append = NULL, *chardev = NULL;
	cleanup_free char *qmp = NULL, *serial = NULL, *out = NULL, *machine = NULL;
	cleanup_free char *fsdev = NULL, *share = NULL;
	char **ports = NULL;
	char *argv[VM_QEMU_ARGV_MAX];
	const char *accel, *why;
	size_t n = 0;
	int r = -1;

	if (bin == NULL)
		return status_set(st, ST_FAILED_PRECONDITION,
		    "vm.launch qemu: vm.qemu %s: not found on PATH or not executable",
		    cfg->vm_qemu);
	if (vm_qemu_check_words(cfg, dir, st) < 0)
		return -1;
	kernel = xstrdup(cfg->vm_kernel[0] != '\0' ? cfg->vm_kernel : GUEST_DIR "/vmlinux");
	initrd =
	    xstrdup(cfg->vm_initrd[0] != '\0' ? cfg->vm_initrd : GUEST_DIR "/initramfs.cpio.gz");
	if (access(kernel, R_OK) < 0)
		return status_errno(st, ST_FAILED_PRECONDITION, errno,
		    "vm.launch qemu: vm.kernel %s (build the guest image with make guest)", kernel);
	if (access(initrd, R_OK) < 0)
		return status_errno(st, ST_FAILED_PRECONDITION, errno,
		    "vm.launch qemu: vm.initrd %s (build the guest image with make guest)", initrd);
	accel = vm_qemu_accel(cfg, &why);
	xasprintf(&machine, "q35,memory-backend=mem");
	xasprintf(&m, "%u", cfg->vm_memory_mib);
	xasprintf(&mem, "memory-backend-memfd,id=mem,size=%uM,share=on", cfg->vm_memory_mib);
	xasprintf(&smp, "%u", cfg->vm_cpus);
	xasprintf(&append, "console=ttyS0 quiet panic=-1%s %s",
	    cfg->log_level >= LOG_DEBUG ? " vmshim.debug=1" : "", vm_qemu_test_append());
	xasprintf(&chardev, "socket,id=vu,path=%s/vu.sock", dir);
	xasprintf(&qmp, "unix:%s,server=on,wait=off", cfg->vm_qmp);
	xasprintf(&serial, "file:%s/console.log", dir);
	xasprintf(&out, "%s/qemu.log", dir);
	/* multidevs=remap: the share spans several host filesystems (one overlay each). */
	xasprintf(&fsdev, "local,id=share,path=%s,security_model=passthrough,multidevs=remap",
	    vm_share_dir());
	xasprintf(&share, "virtio-9p-pci,fsdev=share,mount_tag=%s", VM_SHARE_TAG);
	argv[n++] = bin;
	argv[n++] = "-accel";
	argv[n++] = (char *)accel;
	if (strcmp(accel, "kvm") == 0) {
		argv[n++] = "-cpu";
		argv[n++] = "host";
	}
	argv[n++] = "-machine";
	argv[n++] = machine;
	argv[n++] = "-m";
	argv[n++] = m;
	argv[n++] = "-smp";
	argv[n++] = smp;
	argv[n++] = "-object";
	argv[n++] = mem;
	argv[n++] = "-kernel";
	argv[n++] = kernel;
	argv[n++] = "-initrd";
	argv[n++] = initrd;
	argv[n++] = "-append";
	argv[n++] = append;
	argv[n++] = "-chardev";
	argv[n++] = chardev;
	argv[n++] = "-device";
	argv[n++] = "vhost-user-vsock-pci,chardev=vu";
	argv[n++] = "-fsdev";
	argv[n++] = fsdev;
	argv[n++] = "-device";
	argv[n++] = share;
	ports = xcalloc(cfg->n_hotplug_ports + 1, sizeof *ports);
	for (size_t i = 0; i < cfg->n_hotplug_ports; i++) {
		xasprintf(
		    &ports[i], "pcie-root-port,id=%s,chassis=%zu", cfg->hotplug_ports[i], i + 1);
		argv[n++] = "-device";
		argv[n++] = ports[i];
	}
	argv[n++] = "-qmp";
	argv[n++] = qmp;
	argv[n++] = "-serial";
	argv[n++] = serial;
	argv[n++] = "-monitor";
	argv[n++] = "none";
	argv[n++] = "-display";
	argv[n++] = "none";
	argv[n++] = "-nodefaults";
	argv[n++] = "-no-reboot";
	/* QEMU faces the untrusted guest: its own seccomp filter, no exec, no privileges. */
	argv[n++] = "-sandbox";
	argv[n++] = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";
	argv[n] = NULL;
	vq.qemu = vm_qemu_spawn(argv, out, SIGKILL, st);
	if (vq.qemu < 0 || vm_qemu_write_pid(dir, "qemu.pid", vq.qemu, st) < 0)
		goto out;
	log_info("microVM: started %s (pid %ld): -accel %s (%s), %u cpu(s), %u MiB, kernel %s, "
		 "initrd %s, %zu hot-plug port(s), QMP %s",
	    bin, (long)vq.qemu, accel, why, cfg->vm_cpus, cfg->vm_memory_mib, kernel, initrd,
	    cfg->n_hotplug_ports, cfg->vm_qmp);
	r = 0;
out:
	for (size_t i = 0; i < cfg->n_hotplug_ports; i++)
		free(ports[i]);
	free(ports);
	return r;
}

/* Step 3: the agent answers on its control port through the hybrid socket. */
static int
vm_qemu_wait_agent(const struct shim_config *cfg, int64_t t0, int64_t deadline, struct status *st)
{
	char tail[VM_QEMU_TAIL_BYTES + 1];
	cleanup_free char *con = NULL;
	struct status cst;
	int fd, nap = 5;

	xasprintf(&con, "%s/console.log", vq.dir);
	for (;;) {
		int64_t left;

		if (vm_qemu_child_ended("booting the guest", st))
			return -1;
		left = deadline - time_mono_ms();
		if (left <= 0)
			return status_set(st, ST_DEADLINE_EXCEEDED,
			    "vm.launch qemu: booting the guest: the agent did not answer within "
			    "vm.boot_timeout_ms (%u ms): %s; console: %s",
			    cfg->boot_timeout_ms, cst.msg, vm_qemu_tail(con, tail, sizeof tail));
		/* Before the guest's driver is up the backend holds a CONNECT unanswered. */
		fd = transport_connect(&cfg->agent_ep, left < 1000 ? (int)left : 1000, &cst);
		if (fd >= 0) {
			close(fd);
			log_info("microVM: the agent answers, %lld ms after launch",
			    (long long)(time_mono_ms() - t0));
			return 0;
		}
		poll(NULL, 0, nap);
		if (nap < VM_QEMU_POLL_MAX_MS * 4)
			nap *= 2;
	}
}

int
vm_qemu_start(struct shim_config *cfg, const char *state_dir, struct status *st)
{
	int64_t t0 = time_mono_ms(), deadline = t0 + cfg->boot_timeout_ms;
	cleanup_free char *vsock = NULL;

	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
		return status_errno(st, ST_INTERNAL, errno, "vm.launch qemu: %s", state_dir);
	free(vq.dir);
	vq.dir = xstrdup(state_dir);
	vq.why[0] = '\0';
	xasprintf(&vsock, "uds:%s/v.sock", state_dir);
	free(cfg->vm_vsock);
	cfg->vm_vsock = steal_ptr(&vsock);
	if (cfg->vm_qmp[0] == '\0') {
		free(cfg->vm_qmp);
		xasprintf(&cfg->vm_qmp, "%s/qmp.sock", state_dir);
	}
	unlink(cfg->vm_qmp);
	if (config_endpoints(cfg, "vm.launch qemu", st) < 0)
		return -1;
	if (vm_share_start(state_dir, st) < 0 ||
	    vm_qemu_start_backend(state_dir, deadline, cfg->log_level >= LOG_DEBUG, st) < 0 ||
	    vm_qemu_start_qemu(cfg, state_dir, st) < 0 ||
	    vm_cgroup_join(cfg->vm_cgroup, state_dir, (pid_t[]){vq.qemu, vq.vsock, vm_share_pid()},
		3, st) < 0 ||
	    vm_qemu_wait_agent(cfg, t0, deadline, st) < 0) {
		log_error("%s", st->msg);
		vm_qemu_stop();
		return -1;
	}
	return 0;
}

/* SIGTERM, a grace period, SIGKILL, reap; *pid = -1. */
static void
vm_qemu_kill(pid_t *pid, const char *what)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	if (!util_reap_child(*pid, VM_QEMU_STOP_GRACE_MS))
		log_warn("microVM: %s pid %ld still ran %d ms after SIGTERM: killed", what,
		    (long)*pid, VM_QEMU_STOP_GRACE_MS);
	log_info("microVM: %s pid %ld stopped", what, (long)*pid);
	*pid = -1;
}

static int
vm_qemu_rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	if (remove(path) < 0 && errno != ENOENT)
		log_warn("remove %s: %s", path, strerror(errno));
	return 0;
}

void
vm_qemu_stop(void)
{
	bool share_gone;

	vm_qemu_kill(&vq.qemu, "QEMU");
	/* With QEMU gone the backend exits by itself; SIGTERM covers one that did not. */
	vm_qemu_kill(&vq.vsock, "vmshim-vsock");
	share_gone = vm_share_stop();
	vm_cgroup_leave();
	/* FTW_MOUNT stops at another device, not at a bind of the same filesystem: no walk then. */
	if (vq.dir != NULL && share_gone)
		nftw(vq.dir, vm_qemu_rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	free(vq.dir);
	vq.dir = NULL;
}

bool
vm_qemu_reap(char *why, size_t len)
{
	char how[64];
	int status;

	if (vq.qemu > 0 && waitpid(vq.qemu, &status, WNOHANG) == vq.qemu) {
		vq.qemu = -1;
		vm_qemu_describe(status, how, sizeof how);
		snprintf(why, len, "the VM's QEMU %s", how);
		return true;
	}
	if (vq.vsock > 0 && waitpid(vq.vsock, &status, WNOHANG) == vq.vsock) {
		vq.vsock = -1;
		vm_qemu_describe(status, how, sizeof how);
		snprintf(why, len, "the VM's vsock backend %s", how);
		return true;
	}
	return false;
}

void
vm_qemu_kill_all(void)
{
	if (vq.qemu > 0)
		kill(vq.qemu, SIGKILL);
	if (vq.vsock > 0)
		kill(vq.vsock, SIGKILL);
}

/* Does pid's command line hold the word `word`? */
static bool
vm_qemu_cmdline_has(pid_t pid, const char *word)
{
	char path[64];
	cleanup_free char *buf = xmalloc(65536);
	cleanup_close int fd = -1;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, 65535)) <= 0)
		return false;
	buf[n] = '\0';
	for (char *p = buf; p < buf + n; p += strlen(p) + 1)
		if (strstr(p, word) != NULL)
			return true;
	return false;
}

/* `delete`: SIGKILL the process named by STATE/name if it still is ours. */
static void
vm_qemu_cleanup_one(const char *state_dir, const char *name, const char *what)
{
	cleanup_free char *pidf = NULL, *mark = NULL;
	cleanup_close int fd = -1;
	char buf[32];
	ssize_t n;
	long pid;

	xasprintf(&pidf, "%s/%s", state_dir, name);
	xasprintf(&mark, "%s/vu.sock", state_dir);
	fd = open(pidf, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, sizeof buf - 1)) <= 0)
		return;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 1 || !vm_qemu_cmdline_has((pid_t)pid, mark))
		return;
	if (kill((pid_t)pid, SIGKILL) == 0)
		fprintf(stderr, "vmshim: delete: killed leftover %s pid %ld\n", what, pid);
}

void
vm_qemu_cleanup(const char *state_dir)
{
	if (access(state_dir, F_OK) < 0)
		return;
	vm_qemu_cleanup_one(state_dir, "qemu.pid", "QEMU");
	vm_qemu_cleanup_one(state_dir, "vsock.pid", "vmshim-vsock");
	vm_share_cleanup(state_dir);
	vm_cgroup_cleanup(state_dir);
}
