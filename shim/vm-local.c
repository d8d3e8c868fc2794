/*
 * vm-local.c: the embedded local VM (vm.launch "local").
 *
 * The group's "VM" is a vmshim-agent started on this host as the shim's own child, listening
 * with --listen-uds on a private hybrid-vsock socket in the shim's state directory (0700), with
 * its scratch files beside it (STATE/agent: runc's --root is STATE/agent/runc). It runs the
 * containers with runc when runc is installed (found on PATH, else in /usr/sbin, /usr/bin,
 * /sbin), else with its process runner. The shim attaches to it exactly as to a real VM, over
 * uds:STATE/agent.sock.
 *
 * Runs on the daemon's main thread before any other thread exists and before seccomp (fork and
 * execve are refused afterwards): vm_local_start() forks and execs the agent, which asks the
 * kernel for SIGTERM when the shim dies (PR_SET_PDEATHSIG; on SIGTERM the agent kills what it
 * runs and exits), writes its pid to STATE/agent.pid for `vmshim delete`, and returns only once
 * the agent answers a hybrid-vsock handshake on its control port, or fails naming the step and
 * leaving no process behind. vm_local_stop() (after the loop and every thread have ended)
 * sends SIGTERM, gives the agent VM_LOCAL_STOP_GRACE_MS to kill its containers and exit,
 * then SIGKILLs it, and reaps it. The child's pid is this file's only state.
 *
 * After a shim was SIGKILLed, `vmshim delete` (vm_local_cleanup, a separate short-lived
 * process) finishes the job: it stops the agent named by STATE/agent.pid if that process is
 * still the agent of this state directory (its command line names the socket, so a reused
 * pid is left alone), force-deletes every container runc still knows under STATE/agent/runc,
 * unmounts the root filesystems the agent mounted, and removes the state directory, never
 * crossing into another filesystem (FTW_MOUNT), so an image's files under a mount that is
 * still there are never deleted.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <ftw.h>
#include <unistd.h>

#include "shim.h"
#include "util.h"

#define VM_LOCAL_STOP_GRACE_MS 5000
#define VM_LOCAL_POLL_MAX_MS   20

static pid_t vm_local_child = -1; /* the agent, until reaped */
static char *vm_local_dir;	  /* the state directory, removed by vm_local_stop */

static int vm_local_rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw);

/* vm.agent, else the vmshim-agent beside our own binary (or in ../sbin), else on PATH. */
static char *
vm_local_agent_path(const struct shim_config *cfg, struct status *st)
{
	char self[PATH_MAX], *slash, *out = NULL;
	ssize_t n;

	if (cfg->vm_agent[0] != '\0') {
		if (access(cfg->vm_agent, X_OK) < 0) {
			status_errno(st, ST_FAILED_PRECONDITION, errno,
			    "vm.launch local: vm.agent %s", cfg->vm_agent);
			return NULL;
		}
		return xstrdup(cfg->vm_agent);
	}
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			if (util_find_in(*self ? self : "/", "vmshim-agent", &out))
				return out;
			/* make install and the packages: vmshim in bin, the agent in sbin. */
			if (strlen(self) > 4 && strcmp(self + strlen(self) - 4, "/bin") == 0) {
				strcpy(self + strlen(self) - 3, "sbin");
				if (util_find_in(self, "vmshim-agent", &out))
					return out;
			}
		}
	}
	out = util_which("vmshim-agent", false);
	if (out == NULL)
		status_set(st, ST_FAILED_PRECONDITION,
		    "vm.launch local: vmshim-agent not found beside vmshim, in ../sbin from it, "
		    "nor on PATH (set vm.agent)");
	return out;
}

/* Child side of the fork: become the agent, or _exit(127). */
static void __attribute__((noreturn)) vm_local_exec(char *const argv[], pid_t parent)
{
	sigset_t none;

	/* SIGTERM when the shim dies: the agent then kills its containers and exits. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], argv);
	_exit(127);
}

/* Write the agent's pid for `vmshim delete`. */
static int
vm_local_write_pid(const char *path, pid_t pid, struct status *st)
{
	char buf[32];
	cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int n = snprintf(buf, sizeof buf, "%ld\n", (long)pid);

	if (fd < 0 || write_all(fd, buf, (size_t)n) < 0)
		return status_errno(st, ST_INTERNAL, errno, "vm.launch local: %s", path);
	return 0;
}

/* Wait until the agent answers the handshake on its control port, or dies, or time runs out. */
static int
vm_local_wait_ready(const struct endpoint *ep, int64_t deadline, struct status *st)
{
	int nap = 1, status, fd;
	struct status cst;

	for (;;) {
		pid_t r = waitpid(vm_local_child, &status, WNOHANG);

		if (r == vm_local_child) {
			vm_local_child = -1;
			if (WIFEXITED(status))
				return status_set(st, ST_UNAVAILABLE,
				    "vm.launch local: the agent exited with status %d before it "
				    "answered (see the log)",
				    WEXITSTATUS(status));
			return status_set(st, ST_UNAVAILABLE,
			    "vm.launch local: the agent was killed by signal %d before it answered",
			    WTERMSIG(status));
		}
		fd = transport_connect(ep, VM_LOCAL_POLL_MAX_MS * 10, &cst);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (time_mono_ms() >= deadline)
			return status_set(st, ST_DEADLINE_EXCEEDED,
			    "vm.launch local: the agent did not answer within vm.boot_timeout_ms: "
			    "%s",
			    cst.msg);
		/* Not listening yet: the socket appears within milliseconds of the exec. */
		poll(NULL, 0, nap);
		if (nap < VM_LOCAL_POLL_MAX_MS)
			nap *= 2;
	}
}

int
vm_local_start(struct shim_config *cfg, const char *state_dir, struct status *st)
{
	cleanup_free char *agent = NULL, *runc = NULL, *sock = NULL, *adir = NULL, *pidf = NULL;
	cleanup_free char *vsock = NULL;
	char *argv[12];
	size_t n = 0;
	pid_t parent = getpid();

	agent = vm_local_agent_path(cfg, st);
	if (agent == NULL)
		return -1;
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
		return status_errno(st, ST_INTERNAL, errno, "vm.launch local: %s", state_dir);
	free(vm_local_dir);
	vm_local_dir = xstrdup(state_dir);
	xasprintf(&sock, "%s/agent.sock", state_dir);
	xasprintf(&adir, "%s/agent", state_dir);
	xasprintf(&pidf, "%s/agent.pid", state_dir);
	xasprintf(&vsock, "uds:%s", sock);
	free(cfg->vm_vsock);
	cfg->vm_vsock = steal_ptr(&vsock);
	if (config_endpoints(cfg, "vm.launch local", st) < 0)
		return -1;
	runc = util_which("runc", true);
	argv[n++] = agent;
	argv[n++] = "--listen-uds";
	argv[n++] = sock;
	argv[n++] = "--state-dir";
	argv[n++] = adir;
	if (runc != NULL) {
		argv[n++] = "--runtime";
		argv[n++] = runc;
	}
	if (cfg->log_level >= LOG_DEBUG)
		argv[n++] = "--debug";
	argv[n] = NULL;

	unlink(sock); /* a dead shim's leftover */
	vm_local_child = fork();
	if (vm_local_child < 0)
		return status_errno(st, ST_INTERNAL, errno, "vm.launch local: fork");
	if (vm_local_child == 0)
		vm_local_exec(argv, parent);
	log_info("local VM: started %s (pid %ld, %s runner) on %s", agent, (long)vm_local_child,
	    runc != NULL ? runc : "process", sock);
	if (vm_local_write_pid(pidf, vm_local_child, st) < 0 ||
	    vm_local_wait_ready(&cfg->agent_ep, time_mono_ms() + cfg->boot_timeout_ms, st) < 0) {
		vm_local_stop();
		return -1;
	}
	return 0;
}

pid_t
vm_local_pid(void)
{
	return vm_local_child;
}

void
vm_local_stop(void)
{
	if (vm_local_child <= 0)
		goto out;
	kill(vm_local_child, SIGTERM);
	if (!util_reap_child(vm_local_child, VM_LOCAL_STOP_GRACE_MS))
		log_warn("local VM: agent pid %ld still ran %d ms after SIGTERM: killed",
		    (long)vm_local_child, VM_LOCAL_STOP_GRACE_MS);
	log_info("local VM: agent pid %ld stopped", (long)vm_local_child);
	vm_local_child = -1;
out:
	if (vm_local_dir != NULL)
		nftw(vm_local_dir, vm_local_rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	free(vm_local_dir);
	vm_local_dir = NULL;
}

/* Is pid still the agent of sock (its argv names the socket)? */
static bool
vm_local_is_agent(pid_t pid, const char *sock)
{
	char path[64], buf[4096];
	cleanup_close int fd = -1;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, sizeof buf - 1)) <= 0)
		return false;
	buf[n] = '\0';
	for (char *p = buf; p < buf + n; p += strlen(p) + 1)
		if (strcmp(p, sock) == 0)
			return true;
	return false;
}

/* Has pid gone (or become a zombie nobody of ours can reap)? */
static bool
vm_local_gone(pid_t pid)
{
	char path[64], buf[512], *p;
	cleanup_close int fd = -1;
	ssize_t n;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, sizeof buf - 1)) <= 0)
		return true;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

/* Stop the dead shim's agent: SIGTERM (it kills its containers), then SIGKILL. */
static void
vm_local_cleanup_agent(const char *state_dir)
{
	cleanup_free char *pidf = NULL, *sock = NULL;
	cleanup_close int fd = -1;
	char buf[32];
	ssize_t n;
	long pid;
	int64_t deadline;

	xasprintf(&pidf, "%s/agent.pid", state_dir);
	xasprintf(&sock, "%s/agent.sock", state_dir);
	fd = open(pidf, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, sizeof buf - 1)) <= 0)
		return;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 1 || !vm_local_is_agent((pid_t)pid, sock))
		return;
	kill((pid_t)pid, SIGTERM);
	deadline = time_mono_ms() + VM_LOCAL_STOP_GRACE_MS;
	while (!vm_local_gone((pid_t)pid) && time_mono_ms() < deadline)
		poll(NULL, 0, VM_LOCAL_POLL_MAX_MS);
	if (!vm_local_gone((pid_t)pid)) {
		kill((pid_t)pid, SIGKILL);
		fprintf(stderr, "vmshim: delete: killed leftover agent pid %ld\n", pid);
	}
}

/* Run `runc --root ROOT delete --force ID` and wait for it. */
static void
vm_local_runc_delete(const char *runc, const char *root, const char *id)
{
	char *const argv[] = {
	    (char *)runc, "--root", (char *)root, "delete", "--force", (char *)id, NULL};
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execv(runc, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "vmshim: delete: runc delete --force %s failed\n", id);
	else
		fprintf(stderr, "vmshim: delete: removed leftover container %s\n", id);
}

/* Force-delete every container runc still knows under the dead agent's state. */
static void
vm_local_cleanup_runc(const char *state_dir)
{
	cleanup_free char *root = NULL, *runc = NULL;
	struct dirent *e;
	DIR *d;

	xasprintf(&root, "%s/agent/runc", state_dir);
	d = opendir(root);
	if (d == NULL)
		return;
	runc = util_which("runc", true);
	while (runc != NULL && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			vm_local_runc_delete(runc, root, e->d_name);
	closedir(d);
}

static int
vm_local_rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		log_warn("remove %s: %s", path, strerror(errno));
	return 0;
}

/* Unmount the root filesystems a dead agent left mounted (STATE/agent/<id>.rootfs). */
static void
vm_local_cleanup_mounts(const char *state_dir)
{
	cleanup_free char *dir = NULL;
	struct dirent *e;
	DIR *d;

	xasprintf(&dir, "%s/agent", state_dir);
	d = opendir(dir);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		cleanup_free char *p = NULL;
		size_t n = strlen(e->d_name);

		if (n <= 7 || strcmp(e->d_name + n - 7, ".rootfs") != 0)
			continue;
		xasprintf(&p, "%s/%s", dir, e->d_name);
		while (umount2(p, MNT_DETACH) == 0)
			;
	}
	closedir(d);
}

void
vm_local_cleanup(const char *state_dir)
{
	if (access(state_dir, F_OK) < 0)
		return;
	vm_local_cleanup_agent(state_dir);
	vm_local_cleanup_runc(state_dir);
	vm_local_cleanup_mounts(state_dir);
	nftw(state_dir, vm_local_rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
