/*
 * vm-share.c: containerd's root filesystems, mounted on the host and shared into the microVM.
 *
 * containerd prepares each container's root as host mounts (an overlay of image snapshots);
 * a guest cannot mount host paths, so with vm.launch "qemu" the shim mounts the list on the
 * host under STATE/share/ID and QEMU exports STATE/share to the guest over virtio-9p (mount
 * tag VM_SHARE_TAG). The guest's init mounts the tag on VM_SHARE_GUEST_DIR, and the agent
 * runs the container in VM_SHARE_GUEST_DIR/ID. The guest sees only this group's containers.
 *
 * The shim itself cannot mount: its seccomp profile kills mount(2). So vm_share_start, on the
 * main thread before any other thread and before seccomp, forks the mounter: a child of the
 * shim that keeps its privileges, closes every descriptor but its end of a SOCK_SEQPACKET
 * socketpair and stderr, and serves one request per message:
 *   {"seq": N, "op": "mount", "id": ID, "mounts": [{type, source, options}, ...]}
 *   {"seq": N, "op": "unmount", "id": ID}
 * answering {"seq": N, "code": C, "message": M}. It checks everything (the id as a container
 * id, the list with mount_list_check, only overlays and binds, never of "/") and only ever
 * mounts on STATE/share/ID, nosuid and nodev. The guest can write into the share's root (9p
 * passthrough), so a symlink it puts at STATE/share/ID is removed, never followed, whether
 * mounting, unmounting or cleaning up (mount-list.c). When its socket reaches EOF (the shim stopped
 * it, or died), it unmounts every share it made and exits: a dead shim leaves no mount behind.
 * `vmshim delete` also unmounts whatever is still under STATE/share (vm_share_cleanup).
 *
 * Workers call vm_share_mount and vm_share_unmount; a mutex serializes the exchanges (it
 * exists to serialize exactly that call), each waits at most its timeout, and replies are
 * matched by seq so one that comes late is dropped.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mount-list.h"
#include "shim.h"
#include "util.h"

#define VM_SHARE_MSG_MAX    (160 * 1024)
#define VM_SHARE_STOP_MS    5000
#define VM_SHARE_MOUNTER_FD 3
#define VM_SHARE_NAME	    "vmshim-mounter"

static struct {
	pthread_mutex_t lock; /* one exchange at a time */
	int fd;		      /* the shim's end, -1 when not started */
	pid_t pid;	      /* the mounter, until reaped */
	uint64_t seq;	      /* under lock */
	char *dir;	      /* STATE/share */
} vs = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .pid = -1};

/* ---- the mounter (the child) ---- */

struct vm_share_mounted {
	char **ids;
	size_t n, cap;
};

static void
vm_share_forget(struct vm_share_mounted *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->ids[i], id) == 0) {
			free(m->ids[i]);
			m->ids[i] = m->ids[--m->n];
			return;
		}
	}
}

static bool
vm_share_known(const struct vm_share_mounted *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->ids[i], id) == 0)
			return true;
	return false;
}

/*
 * What the share takes: a container's root as containerd's snapshotters make it, an overlay
 * of directories or a bind of one, never of "/" (the guest would see the host). Whatever it is,
 * it is mounted nosuid and nodev on the host (the guest may write setuid files or device
 * nodes into it through 9p).
 */
static int
vm_share_allowed(json_t *mounts, struct status *st)
{
	size_t i;
	json_t *m;

	json_array_foreach (mounts, i, m) {
		const char *type = json_string_value(json_object_get(m, "type"));
		const char *source = json_string_value(json_object_get(m, "source"));

		if (strcmp(type, "bind") == 0 || strcmp(type, "rbind") == 0) {
			if (source[0] != '/' || source[strspn(source, "/")] == '\0' ||
			    path_has_dotdot(source))
				return status_set(st, ST_INVALID_ARGUMENT,
				    "rootfs[%zu].source: a bind of \"%.*s\" is not shared with a "
				    "microVM",
				    i, LOG_STR_MAX, source);
		} else if (strcmp(type, "overlay") != 0) {
			return status_set(st, ST_INVALID_ARGUMENT,
			    "rootfs[%zu].type: \"%.*s\" is not shared with a microVM (overlay or "
			    "bind)",
			    i, LOG_STR_MAX, type);
		}
	}
	return 0;
}

/* Serve one request; st is the answer. */
static void
vm_share_handle(const char *dir, struct vm_share_mounted *m, json_t *req, struct status *st)
{
	const char *op = NULL, *id = NULL;
	cleanup_free char *target = NULL;
	json_t *mounts = NULL;
	int r;

	if (msg_get_string(req, "request", "op", true, &op, st) < 0 ||
	    msg_get_string(req, "request", "id", true, &id, st) < 0 ||
	    protocol_check_id("request.id", id, false, st) < 0)
		return;
	xasprintf(&target, "%s/%s", dir, id);
	if (strcmp(op, "mount") == 0) {
		if (msg_get_array(req, "request", "mounts", true, &mounts, st) < 0 ||
		    mount_list_check(mounts, "rootfs", st) < 0 || vm_share_allowed(mounts, st) < 0)
			return;
		if (vm_share_known(m, id)) {
			status_set(st, ST_ALREADY_EXISTS, "%s: already mounted", target);
			return;
		}
		if (mount_list_apply(mounts, target, MS_NOSUID | MS_NODEV, st) < 0)
			return;
		if (m->n == m->cap) {
			m->cap = m->cap ? 2 * m->cap : 16;
			m->ids = xrealloc(m->ids, m->cap * sizeof *m->ids);
		}
		m->ids[m->n++] = xstrdup(id);
	} else if (strcmp(op, "unmount") == 0) {
		if ((r = mount_list_undo(target)) < 0) {
			status_errno(st, ST_INTERNAL, r, "unmount %s", target);
			return;
		}
		vm_share_forget(m, id);
	} else {
		status_set(st, ST_INVALID_ARGUMENT, "request.op: unknown operation \"%s\"", op);
		return;
	}
	status_clear(st);
}

static void __attribute__((noreturn)) vm_share_serve(const char *dir)
{
	struct vm_share_mounted m = {0};
	char *buf = xmalloc(VM_SHARE_MSG_MAX);

	for (;;) {
		cleanup_json json_t *req = NULL, *seq = NULL, *resp = NULL;
		cleanup_free char *out = NULL;
		struct status st;
		json_error_t jerr;
		ssize_t n = recv(VM_SHARE_MOUNTER_FD, buf, VM_SHARE_MSG_MAX, MSG_TRUNC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EOF: the shim is done, or gone */
		if (n > VM_SHARE_MSG_MAX) {
			status_set(&st, ST_INVALID_ARGUMENT, "request: longer than %d bytes",
			    VM_SHARE_MSG_MAX);
		} else if ((req = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr)) ==
			       NULL ||
			   !json_is_object(req)) {
			status_set(&st, ST_INVALID_ARGUMENT, "request: not a JSON object");
		} else {
			seq = json_incref(json_object_get(req, "seq"));
			vm_share_handle(dir, &m, req, &st);
		}
		resp =
		    json_pack("{s:O?, s:i, s:s}", "seq", seq, "code", st.code, "message", st.msg);
		out = json_dumps(resp, JSON_COMPACT);
		if (out == NULL || send(VM_SHARE_MOUNTER_FD, out, strlen(out), MSG_NOSIGNAL) < 0)
			break;
	}
	for (size_t i = 0; i < m.n; i++) {
		cleanup_free char *target = NULL;
		int r;

		xasprintf(&target, "%s/%s", dir, m.ids[i]);
		if ((r = mount_list_undo(target)) < 0)
			fprintf(stderr, VM_SHARE_NAME ": unmount %s: %s\n", target, strerror(-r));
	}
	_exit(0);
}

/* ---- the shim's side ---- */

static void vm_share_remove(const char *dir, bool unmount);

int
vm_share_start(const char *state_dir, struct status *st)
{
	int sv[2];
	pid_t pid;

	free(vs.dir);
	xasprintf(&vs.dir, "%s/share", state_dir);
	if (mkdir(vs.dir, 0700) < 0 && errno != EEXIST)
		return status_errno(st, ST_INTERNAL, errno, "vm.launch qemu: %s", vs.dir);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return status_errno(st, ST_INTERNAL, errno, "vm.launch qemu: socketpair");
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return status_errno(st, ST_INTERNAL, errno, "vm.launch qemu: fork the mounter");
	}
	if (pid == 0) {
		sigset_t all;

		/* Only its socket and stderr; signals as a fresh process has them. */
		if (dup2(sv[1], VM_SHARE_MOUNTER_FD) < 0)
			_exit(127);
		close_range(VM_SHARE_MOUNTER_FD + 1, ~0U, 0);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		/*
		 * Only the EOF of its socket ends it (after unmounting): a terminal's SIGINT or
		 * a process group's SIGTERM must not kill it before the shim is done.
		 */
		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		prctl(PR_SET_NAME, VM_SHARE_NAME);
		vm_share_serve(vs.dir);
	}
	close(sv[1]);
	vs.fd = sv[0];
	vs.pid = pid;
	log_info("microVM: root filesystem share %s, mounter pid %ld", vs.dir, (long)pid);
	return 0;
}

const char *
vm_share_dir(void)
{
	return vs.dir;
}

pid_t
vm_share_pid(void)
{
	return vs.pid;
}

bool
vm_share_active(void)
{
	return vs.fd >= 0;
}

/* Send req and wait for the reply with its seq, until the deadline. Caller holds vs.lock. */
static int
vm_share_exchange(json_t *req, int timeout_ms, struct status *st)
{
	int64_t deadline = time_mono_ms() + timeout_ms;
	cleanup_free char *out = NULL, *buf = NULL;
	uint64_t seq = ++vs.seq;
	ssize_t n;

	json_object_set_new(req, "seq", json_integer((json_int_t)seq));
	out = json_dumps(req, JSON_COMPACT);
	if (out == NULL || strlen(out) > VM_SHARE_MSG_MAX)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "payload.rootfs: longer than %d bytes as a request", VM_SHARE_MSG_MAX);
	if (send(vs.fd, out, strlen(out), MSG_NOSIGNAL) < 0)
		return status_errno(st, ST_UNAVAILABLE, errno, "the root filesystem mounter");
	buf = xmalloc(VM_SHARE_MSG_MAX + 1);
	for (;;) {
		cleanup_json json_t *resp = NULL;
		struct pollfd p = {.fd = vs.fd, .events = POLLIN};
		int64_t left = deadline - time_mono_ms();
		json_int_t code = 0, got = -1;
		const char *msg = "";

		if (left <= 0)
			return status_set(st, ST_DEADLINE_EXCEEDED,
			    "the root filesystem mounter did not answer within %d ms", timeout_ms);
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return status_errno(st, ST_INTERNAL, errno, "poll the mounter");
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = recv(vs.fd, buf, VM_SHARE_MSG_MAX, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return status_set(
			    st, ST_UNAVAILABLE, "the root filesystem mounter is gone");
		resp = json_loadb(buf, (size_t)n, 0, NULL);
		if (json_unpack(
			resp, "{s:I, s:I, s:s}", "seq", &got, "code", &code, "message", &msg) < 0 ||
		    code < 0 || code > ST_UNAUTHENTICATED)
			return status_set(st, ST_INTERNAL, "the mounter's answer is malformed");
		if ((uint64_t)got != seq)
			continue; /* the answer to an exchange that timed out */
		if (code == ST_OK)
			return 0;
		return status_set(st, (int)code, "%s", msg);
	}
}

/* One exchange with the mounter, under the lock. */
static int
vm_share_call(json_t *req, int timeout_ms, struct status *st)
{
	int r;

	struct timespec until;
	int64_t t0 = time_mono_ms();

	if (vs.fd < 0)
		return status_set(st, ST_FAILED_PRECONDITION, "no root filesystem share");
	/* The deadline covers the wait for the exchange before ours too. */
	time_after_ms(CLOCK_REALTIME, timeout_ms, &until);
	if ((r = pthread_mutex_timedlock(&vs.lock, &until)) != 0)
		return status_errno(st, r == ETIMEDOUT ? ST_DEADLINE_EXCEEDED : ST_INTERNAL, r,
		    "the root filesystem mounter is busy");
	r = vm_share_exchange(req, timeout_ms - (int)(time_mono_ms() - t0), st);
	pthread_mutex_unlock(&vs.lock);
	return r;
}

int
vm_share_mount(const char *id, json_t *mounts, int timeout_ms, struct status *st)
{
	cleanup_json json_t *req =
	    json_pack("{s:s, s:s, s:O}", "op", "mount", "id", id, "mounts", mounts);

	if (vm_share_call(req, timeout_ms, st) < 0)
		return -1;
	log_info_id(id, "", "root filesystem: %zu mount(s) on %s/%s, shared with the guest",
	    json_array_size(mounts), vs.dir, id);
	return 0;
}

int
vm_share_unmount(const char *id, int timeout_ms, struct status *st)
{
	cleanup_json json_t *req = json_pack("{s:s, s:s}", "op", "unmount", "id", id);

	if (vm_share_call(req, timeout_ms, st) < 0)
		return -1;
	log_info_id(id, "", "root filesystem: unmounted from the share");
	return 0;
}

bool
vm_share_stop(void)
{
	bool gone = true;

	if (vs.fd >= 0) {
		close(vs.fd); /* EOF: the mounter unmounts what is left and exits */
		vs.fd = -1;
	}
	if (vs.pid > 0 && !util_reap_child(vs.pid, VM_SHARE_STOP_MS))
		log_warn("microVM: the mounter still ran %d ms after its socket closed: killed",
		    VM_SHARE_STOP_MS);
	vs.pid = -1;
	if (vs.dir != NULL) {
		vm_share_remove(vs.dir, false);
		gone = access(vs.dir, F_OK) < 0;
		if (!gone)
			log_warn("microVM: %s still holds mounts: the state directory stays for "
				 "`vmshim delete`",
			    vs.dir);
		free(vs.dir);
		vs.dir = NULL;
	}
	return gone;
}

/*
 * Remove dir's mount points and dir itself. Only an unconfined process may unmount (the
 * shim's seccomp profile kills umount2): the running shim relies on its mounter having done
 * it, so a directory still mounted merely stays (EBUSY) and is logged.
 */
static void
vm_share_remove(const char *dir, bool unmount)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		cleanup_free char *target = NULL;
		struct stat sb;
		int r = 0;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		xasprintf(&target, "%s/%s", dir, e->d_name);
		/* What the guest put in the share's root is removed, never followed. */
		if (lstat(target, &sb) == 0 && !S_ISDIR(sb.st_mode))
			r = unlink(target) < 0 ? -errno : 0;
		else if (unmount)
			r = mount_list_undo(target);
		else if (rmdir(target) < 0 && errno != ENOENT)
			r = -errno;
		if (r < 0 && unmount)
			fprintf(stderr, "vmshim: delete: %s: %s\n", target, strerror(-r));
		else if (r < 0)
			log_warn("microVM: %s stays: %s", target, strerror(-r));
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT && unmount)
		fprintf(stderr, "vmshim: delete: rmdir %s: %s\n", dir, strerror(errno));
	else if (rmdir(dir) < 0 && errno != ENOENT)
		log_warn("microVM: rmdir %s: %s", dir, strerror(errno));
}

void
vm_share_cleanup(const char *state_dir)
{
	cleanup_free char *dir = NULL;

	xasprintf(&dir, "%s/share", state_dir);
	vm_share_remove(dir, true);
}
