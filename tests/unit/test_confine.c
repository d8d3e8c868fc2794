/*
 * test_confine.c: self-confinement (common/confine.c), one forked child per case.
 *
 * A filter can never be removed, so every case forks a child that confines itself and then
 * probes; the child reports through its exit code (0 or the number of the failed step, with a
 * line on stderr) or, for the shim's kill set, by dying of SIGSYS, and the parent asserts on
 * the wait status. Children leave with exit(), not _exit(), so under ASan the leak check runs
 * inside the filter too. Cases: /proc/self/status after confining; the kill set (execve,
 * ptrace, mount, unshare, bpf, ...) ends the child with SIGSYS; unlisted calls fail with EPERM
 * and the child lives; TSYNC reaches threads created before confining; ordinary daemon work
 * (sockets, FIFO, eventfd, threads, a libevent timer, jansson, files, getrandom) still works;
 * the agent profile still forks and execs, passes the filter on, and refuses ptrace.
 * A --disable-seccomp build checks that confining is a no-op and skips the refusal cases.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sched.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "confine.h"
#include "status.h"
#include "unit.h"

static char tmpdir[] = "/tmp/test_confine.XXXXXX";

/* A child's verdict: print which step failed and why, return its number. */
static int
step_fail(int step, const char *what)
{
	fprintf(stderr, "child step %d: %s (errno %d: %s)\n", step, what, errno, strerror(errno));
	return step;
}

/* Read a numeric field ("Seccomp", "NoNewPrivs", ...) of a /proc status file; -1 if absent. */
static long
proc_status_field(const char *path, const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* Fork a child that runs fn() and exits with its result; return the wait status. */
static int
run_child(int (*fn)(void *), void *arg)
{
	int status = -1;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		/* SIGSYS dumps core by default: not into the build tree. */
		struct rlimit nocore = {0, 0};
		(void)setrlimit(RLIMIT_CORE, &nocore);
		exit(fn(arg));
	}
	CU_ASSERT_FATAL(pid > 0);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

/* Assert that a child exited with status 0; say how it ended otherwise. */
static void
assert_exited_ok(int status)
{
	CU_ASSERT(WIFEXITED(status));
	CU_ASSERT_EQUAL(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		printf("\n  child status 0x%x (exit %d, signal %d)\n", status,
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Confine the child with a profile; a failure is exit code 2. */
static void
child_confine(enum confine_profile p)
{
	struct status st;

	if (confine_apply(p, &st) != 0) {
		fprintf(stderr, "confine_apply: %s\n", st.msg);
		exit(2);
	}
}

#ifdef ENABLE_SECCOMP

/* (a) The kernel reports a filter, and the log phrase names the allow-list. */
static int
child_shim_status(void *arg)
{
	unsigned n = 0;

	if (strcmp(confine_state(), "off (config)") != 0)
		return step_fail(10, "state before confining");
	child_confine(CONFINE_PROFILE_SHIM);
	if (proc_status_field("/proc/self/status", "Seccomp") != 2)
		return step_fail(11, "Seccomp is not 2");
	if (proc_status_field("/proc/self/status", "Seccomp_filters") < 1)
		return step_fail(12, "no Seccomp_filters");
	if (proc_status_field("/proc/self/status", "NoNewPrivs") != 1)
		return step_fail(13, "shim without NoNewPrivs");
	if (sscanf(confine_state(), "on (allow-list, %u syscalls)", &n) != 1 || n < 100)
		return step_fail(14, confine_state());
	/* A second filter is refused (seccomp(2) is not listed) and the state stays on. */
	struct status st;
	if (confine_apply(CONFINE_PROFILE_SHIM, &st) != -1 || st.code != ST_INTERNAL)
		return step_fail(15, "second confine_apply did not fail");
	if (strncmp(confine_state(), "on (allow-list, ", 16) != 0)
		return step_fail(16, confine_state());
	return 0;
}

static void
test_shim_status(void)
{
	int status = run_child(child_shim_status, NULL);

	assert_exited_ok(status);
	CU_ASSERT_STRING_EQUAL(confine_state(), "off (config)");
}

/* A syscall of the shim's kill set, called with zero arguments unless noted. */
struct kill_case {
	const char *name;
	long nr;
};

static const struct kill_case kill_cases[] = {
    {"ptrace(PTRACE_TRACEME)", SYS_ptrace}, /* request 0 is TRACEME */
    {"mount", SYS_mount},
    {"umount2", SYS_umount2},
    {"unshare", SYS_unshare},
    {"setns", SYS_setns},
    {"execveat", SYS_execveat},
    {"bpf", SYS_bpf},
    {"kexec_load", SYS_kexec_load},
    {"init_module", SYS_init_module},
    {"finit_module", SYS_finit_module},
    {"process_vm_readv", SYS_process_vm_readv},
    {"keyctl", SYS_keyctl},
    {"pivot_root", SYS_pivot_root},
    {"chroot", SYS_chroot},
    {"perf_event_open", SYS_perf_event_open},
    {"userfaultfd", SYS_userfaultfd},
    {"personality", SYS_personality},
    {"io_uring_setup", SYS_io_uring_setup},
    {"open_by_handle_at", SYS_open_by_handle_at},
};

/* Confine, then make one call of the kill set: the child must not come back from it. */
static int
child_kill_raw(void *arg)
{
	const struct kill_case *k = arg;

	child_confine(CONFINE_PROFILE_SHIM);
	syscall(k->nr, 0, 0, 0, 0, 0, 0);
	fprintf(stderr, "%s returned (errno %d)\n", k->name, errno);
	return 3;
}

/* (b) execve of a real program, the way an attacker would. */
static int
child_kill_execve(void *arg)
{
	char *argv[] = {"/bin/true", NULL};
	char *envp[] = {NULL};

	child_confine(CONFINE_PROFILE_SHIM);
	execve("/bin/true", argv, envp);
	return step_fail(3, "execve returned");
}

/* (c), (d) with the libc wrappers and real arguments. */
static int
child_kill_ptrace(void *arg)
{
	child_confine(CONFINE_PROFILE_SHIM);
	ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	return step_fail(3, "ptrace returned");
}

static int
child_kill_mount(void *arg)
{
	child_confine(CONFINE_PROFILE_SHIM);
	mount("none", tmpdir, "tmpfs", 0, NULL);
	return step_fail(3, "mount returned");
}

static int
child_kill_unshare(void *arg)
{
	child_confine(CONFINE_PROFILE_SHIM);
	unshare(CLONE_NEWNS);
	return step_fail(3, "unshare returned");
}

/* Assert that the child died of SIGSYS (the kill set's action). */
static void
assert_sigsys(int status, const char *what)
{
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
		printf("\n  %s: child status 0x%x, not killed by SIGSYS\n", what, status);
}

static void
test_shim_kills_execve(void)
{
	assert_sigsys(run_child(child_kill_execve, NULL), "execve");
}

static void
test_shim_kills_ptrace(void)
{
	assert_sigsys(run_child(child_kill_ptrace, NULL), "ptrace");
}

static void
test_shim_kills_mount_unshare(void)
{
	assert_sigsys(run_child(child_kill_mount, NULL), "mount");
	assert_sigsys(run_child(child_kill_unshare, NULL), "unshare");
}

static void
test_shim_kill_set(void)
{
	for (size_t i = 0; i < sizeof kill_cases / sizeof kill_cases[0]; i++)
		assert_sigsys(
		    run_child(child_kill_raw, (void *)&kill_cases[i]), kill_cases[i].name);
}

/* Unlisted calls fail with EPERM (or ENOSYS for clone3) and the process carries on. */
static int
child_shim_errno(void *arg)
{
	struct rlimit rl;
	char path[256];
	pid_t pid;
	int fd;

	child_confine(CONFINE_PROFILE_SHIM);
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid != -1 || errno != EPERM)
		return step_fail(10, "fork was not refused with EPERM");
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return step_fail(11, "clone3 did not fail with ENOSYS");
	if (socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) != -1 || errno != EPERM)
		return step_fail(12, "AF_INET socket was not refused");
	snprintf(path, sizeof path, "%s/dev", tmpdir);
	if (mknod(path, S_IFCHR | 0600, makedev(1, 3)) != -1 || errno != EPERM)
		return step_fail(13, "mknod of a device was not refused");
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return step_fail(14, "open /dev/null");
	if (ioctl(fd, TIOCSTI, "x") != -1 || errno != EPERM)
		return step_fail(15, "ioctl TIOCSTI was not refused with EPERM");
	close(fd);
	if (syscall(SYS_prlimit64, 1, RLIMIT_NOFILE, NULL, &rl) != -1 || errno != EPERM)
		return step_fail(16, "prlimit64 on pid 1 was not refused");
	if (syscall(SYS_sethostname, "x", 1) != -1 || errno != EPERM)
		return step_fail(17, "sethostname was not refused");
	return 0;
}

static void
test_shim_errno_default(void)
{
	assert_exited_ok(run_child(child_shim_errno, NULL));
}

/* (e) Threads created before confining: TSYNC must reach them, and their execve kills. */
struct tsync {
	pthread_barrier_t started, confined, checked, go_exec;
	long seccomp[2];
};

struct tsync_thread {
	struct tsync *ts;
	int idx;
};

/* Wait for the main thread to confine, read our own task status, and maybe execve. */
static void *
tsync_thread_main(void *arg)
{
	struct tsync_thread *t = arg;
	char path[64];

	pthread_barrier_wait(&t->ts->started);
	pthread_barrier_wait(&t->ts->confined);
	snprintf(path, sizeof path, "/proc/self/task/%ld/status", (long)gettid());
	t->ts->seccomp[t->idx] = proc_status_field(path, "Seccomp");
	pthread_barrier_wait(&t->ts->checked);
	if (t->idx == 1) {
		char *argv[] = {"/bin/true", NULL};
		char *envp[] = {NULL};

		pthread_barrier_wait(&t->ts->go_exec);
		execve("/bin/true", argv, envp);
		fprintf(stderr, "execve from a thread returned (errno %d)\n", errno);
		exit(4);
	}
	return NULL;
}

static int
child_tsync(void *arg)
{
	int *report = arg;
	struct tsync ts = {.seccomp = {-1, -1}};
	struct tsync_thread th[2] = {{&ts, 0}, {&ts, 1}};
	pthread_t tid[2];

	pthread_barrier_init(&ts.started, NULL, 3);
	pthread_barrier_init(&ts.confined, NULL, 3);
	pthread_barrier_init(&ts.checked, NULL, 3);
	pthread_barrier_init(&ts.go_exec, NULL, 2);
	for (int i = 0; i < 2; i++)
		if (pthread_create(&tid[i], NULL, tsync_thread_main, &th[i]) != 0)
			return step_fail(10, "pthread_create");
	pthread_barrier_wait(&ts.started);
	child_confine(CONFINE_PROFILE_SHIM);
	pthread_barrier_wait(&ts.confined);
	pthread_barrier_wait(&ts.checked);
	if (ts.seccomp[0] != 2 || ts.seccomp[1] != 2) {
		fprintf(stderr, "threads' Seccomp: %ld %ld\n", ts.seccomp[0], ts.seccomp[1]);
		return 11;
	}
	if (write(report[1], "k", 1) != 1)
		return step_fail(12, "report");
	pthread_join(tid[0], NULL);
	pthread_barrier_wait(&ts.go_exec);
	pthread_join(tid[1], NULL);
	return step_fail(13, "thread 1 came back from execve");
}

static void
test_shim_tsync_threads(void)
{
	int report[2], status;
	char c = 0;

	CU_ASSERT_FATAL(pipe2(report, O_CLOEXEC) == 0);
	status = run_child(child_tsync, report);
	close(report[1]);
	CU_ASSERT_EQUAL(read(report[0], &c, 1), 1);
	CU_ASSERT_EQUAL(c, 'k'); /* both threads saw Seccomp 2 */
	close(report[0]);
	assert_sigsys(status, "execve from a thread");
}

/* (f) What the shim does all day still works once confined. */
static void *
noop_thread(void *arg)
{
	*(int *)arg = 42;
	return NULL;
}

static void
timer_fired(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Unix stream socket: bind, listen, connect, accept4, send, FIONREAD, recv. */
static int
work_unix_socket(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int l, c, a, n = 0;
	char buf[8];

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/sock", tmpdir);
	if ((l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 4) != 0)
		return step_fail(20, "unix listen");
	if ((c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(c, (struct sockaddr *)&sa, sizeof sa) != 0)
		return step_fail(21, "unix connect");
	if ((a = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return step_fail(22, "accept4");
	if (send(c, "hello", 5, MSG_NOSIGNAL) != 5 || ioctl(a, FIONREAD, &n) != 0 || n != 5 ||
	    recv(a, buf, sizeof buf, 0) != 5 || memcmp(buf, "hello", 5) != 0)
		return step_fail(23, "unix send/FIONREAD/recv");
	close(a);
	close(c);
	close(l);
	unlink(sa.sun_path);
	return 0;
}

/* A FIFO made with mkfifo, a socketpair, an eventfd and a timerfd. */
static int
work_fds(void)
{
	char path[256], buf[8];
	int sp[2], r, w, efd, tfd;
	uint64_t v = 0;
	struct itimerspec its = {.it_value = {0, 1000000}};

	snprintf(path, sizeof path, "%s/fifo", tmpdir);
	if (mkfifo(path, 0600) != 0)
		return step_fail(30, "mkfifo");
	if ((r = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 ||
	    (w = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return step_fail(31, "open fifo");
	if (write(w, "fifo", 4) != 4 || read(r, buf, sizeof buf) != 4)
		return step_fail(32, "fifo write/read");
	close(r);
	close(w);
	unlink(path);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0 ||
	    write(sp[0], "x", 1) != 1 || read(sp[1], buf, 1) != 1)
		return step_fail(33, "socketpair");
	close(sp[0]);
	close(sp[1]);
	if ((efd = eventfd(0, EFD_CLOEXEC)) < 0 || eventfd_write(efd, 7) != 0 ||
	    eventfd_read(efd, &v) != 0 || v != 7)
		return step_fail(34, "eventfd");
	close(efd);
	if ((tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)) < 0 ||
	    timerfd_settime(tfd, 0, &its, NULL) != 0 || read(tfd, &v, sizeof v) != sizeof v)
		return step_fail(35, "timerfd");
	close(tfd);
	return 0;
}

/* A file written and read back, the clock, getrandom, kill(self, 0). */
static int
work_misc(void)
{
	char path[256], buf[16];
	unsigned char rnd[16];
	struct timespec ts;
	int fd;

	snprintf(path, sizeof path, "%s/file", tmpdir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    write(fd, "contents", 8) != 8 || fsync(fd) != 0 || lseek(fd, 0, SEEK_SET) != 0 ||
	    read(fd, buf, sizeof buf) != 8 || memcmp(buf, "contents", 8) != 0)
		return step_fail(40, "file write/read");
	close(fd);
	unlink(path);
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0 || clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return step_fail(41, "clock_gettime");
	if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
		return step_fail(42, "getrandom");
	if (kill(getpid(), 0) != 0)
		return step_fail(43, "kill(self, 0)");
	return 0;
}

/* A new thread, a libevent timer on a fresh event_base, a jansson round trip. */
static int
work_threads_event_json(void)
{
	struct event_base *base;
	struct event *ev;
	struct timeval tv = {0, 5000};
	pthread_t t;
	int set = 0, fired = 0;
	json_t *j, *back;
	char *s;

	if (pthread_create(&t, NULL, noop_thread, &set) != 0 || pthread_join(t, NULL) != 0 ||
	    set != 42)
		return step_fail(50, "pthread_create after confining");
	if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL)
		return step_fail(51, "event_base_new");
	if ((ev = evtimer_new(base, timer_fired, &fired)) == NULL || evtimer_add(ev, &tv) != 0 ||
	    event_base_dispatch(base) < 0 || !fired)
		return step_fail(52, "libevent timer");
	event_free(ev);
	event_base_free(base);
	j = json_pack("{s:s, s:i}", "id", "c1", "pid", 42);
	s = json_dumps(j, JSON_COMPACT);
	back = s != NULL ? json_loads(s, 0, NULL) : NULL;
	if (back == NULL || !json_equal(j, back))
		return step_fail(53, "jansson round trip");
	free(s);
	json_decref(j);
	json_decref(back);
	return 0;
}

static int
child_shim_work(void *arg)
{
	int r;

	child_confine(CONFINE_PROFILE_SHIM);
	if ((r = work_unix_socket()) != 0 || (r = work_fds()) != 0 || (r = work_misc()) != 0 ||
	    (r = work_threads_event_json()) != 0)
		return r;
	/* Stdio and the exit path (atexit, sanitizer leak check) also run confined. */
	printf("[confined child: work done] ");
	return 0;
}

static void
test_shim_work_survives(void)
{
	assert_exited_ok(run_child(child_shim_work, NULL));
}

/* Whether we hold CAP_SYS_ADMIN (the agent then loads its filter without NO_NEW_PRIVS). */
static bool
have_sys_admin(void)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "re");

	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return (eff >> 21) & 1; /* CAP_SYS_ADMIN */
}

/* Fork, exec argv, and return the child's exit code (-1 on anything else). */
static int
spawn_wait(char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* The agent profile: exec still works and passes the filter on; ptrace and kexec do not. */
static int
child_agent(void *arg)
{
	char *true_argv[] = {"/bin/true", NULL};
	char *check_argv[] = {
	    "/bin/sh", "-c", "grep -q '^Seccomp:[[:space:]]*2$' /proc/self/status", NULL};
	long nnp_expected = have_sys_admin() ? 0 : 1;
	unsigned n = 0;

	child_confine(CONFINE_PROFILE_AGENT);
	if (proc_status_field("/proc/self/status", "Seccomp") != 2)
		return step_fail(10, "Seccomp is not 2");
	if (proc_status_field("/proc/self/status", "NoNewPrivs") != nnp_expected)
		return step_fail(11, "NoNewPrivs");
	if (sscanf(confine_state(), "on (deny-list, %u syscalls)", &n) != 1 || n < 10)
		return step_fail(12, confine_state());
	if (spawn_wait(true_argv) != 0)
		return step_fail(13, "fork+exec /bin/true");
	if (spawn_wait(check_argv) != 0)
		return step_fail(14, "the exec'd child does not carry the filter");
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != -1 || errno != EPERM)
		return step_fail(15, "ptrace(TRACEME) was not refused");
	if (syscall(SYS_process_vm_readv, getppid(), NULL, 0, NULL, 0, 0) != -1 || errno != EPERM)
		return step_fail(16, "process_vm_readv was not refused");
	if (syscall(SYS_kexec_load, 0, 0, NULL, 0) != -1 || errno != EPERM)
		return step_fail(17, "kexec_load was not refused");
	if (syscall(SYS_init_module, NULL, 0, "") != -1 || errno != EPERM)
		return step_fail(18, "init_module was not refused");
	return 0;
}

static void
test_agent_profile(void)
{
	assert_exited_ok(run_child(child_agent, NULL));
}

#else /* !ENABLE_SECCOMP */

/* --disable-seccomp: confining is a no-op that succeeds, and the state says why. */
static int
child_disabled(void *arg)
{
	/* Each exits 2 unless confine_apply returns 0. */
	child_confine(CONFINE_PROFILE_SHIM);
	child_confine(CONFINE_PROFILE_AGENT);
	if (proc_status_field("/proc/self/status", "Seccomp") != 0)
		return step_fail(11, "a filter was installed");
	if (strcmp(confine_state(), "off (built with --disable-seccomp)") != 0)
		return step_fail(12, confine_state());
	return 0;
}

static void
test_disabled_noop(void)
{
	CU_ASSERT_FALSE(confine_available());
	assert_exited_ok(run_child(child_disabled, NULL));
	printf("\n  built with --disable-seccomp: refusal checks skipped ");
}

#endif /* ENABLE_SECCOMP */

int
main(void)
{
	static const struct unit_case cases[] = {
#ifdef ENABLE_SECCOMP
	    {"shim: /proc/self/status and state", test_shim_status},
	    {"shim: execve kills (SIGSYS)", test_shim_kills_execve},
	    {"shim: ptrace(TRACEME) kills", test_shim_kills_ptrace},
	    {"shim: mount and unshare kill", test_shim_kills_mount_unshare},
	    {"shim: the rest of the kill set", test_shim_kill_set},
	    {"shim: unlisted calls get EPERM", test_shim_errno_default},
	    {"shim: TSYNC reaches earlier threads", test_shim_tsync_threads},
	    {"shim: daemon work still works", test_shim_work_survives},
	    {"agent: exec works, ptrace refused", test_agent_profile},
#else
	    {"disabled build: confine is a no-op", test_disabled_noop},
#endif
	    {NULL, NULL},
	};
	int rc;

#ifdef ENABLE_SECCOMP
	if (!confine_available())
		unit_skip("the kernel has no seccomp filters with TSYNC");
#endif
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	rc = unit_main("seccomp", cases);
	rmdir(tmpdir);
	return rc;
}
