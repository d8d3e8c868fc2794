/*
 * test_vm.c: the QMP client, block hot-add and the bring-up lock, against a real QEMU.
 *
 * Each case starts its own qemu-system-x86_64 (q35, no devices, paused, no kernel) with three
 * pcie-root-ports and two QMP monitors in a private directory. The first monitor is the
 * shim's; the second stands in for the guest: with no guest OS, QEMU completes an unplug only
 * on system_reset, which the test issues there to play the guest's acknowledgement. No fake
 * QEMU: if QEMU is not installed the program exits 77 saying so.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "transport.h"
#include "unit.h"
#include "util.h"
#include "vm.h"

static const char *qemu_bin = "qemu-system-x86_64";
static const char *const ports[] = {"rp0", "rp1", "rp2"};

struct vm {
	char dir[64];
	char qmp_path[128];
	char guest_path[128];
	char image[128];
	char image2[128];
	pid_t pid;
	struct qmp *qmp;   /* the shim's monitor */
	struct qmp *guest; /* the second monitor, playing the guest */
};

/* Start QEMU and wait (bounded) until both monitors accept. */
static void
vm_start(struct vm *vm)
{
	char qmp_arg[160], guest_arg[160];
	struct endpoint ep = {.kind = ENDPOINT_UNIX};
	struct status st;
	int fd, i;

	snprintf(qmp_arg, sizeof qmp_arg, "unix:%s,server=on,wait=off", vm->qmp_path);
	snprintf(guest_arg, sizeof guest_arg, "unix:%s,server=on,wait=off", vm->guest_path);
	vm->pid = fork();
	if (vm->pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 1);
		dup2(null, 2);
		execlp(qemu_bin, qemu_bin, "-machine", "q35", "-nodefaults", "-S", "-display",
		    "none", "-accel", "kvm", "-accel", "tcg", "-device",
		    "pcie-root-port,id=rp0,chassis=1", "-device", "pcie-root-port,id=rp1,chassis=2",
		    "-device", "pcie-root-port,id=rp2,chassis=3", "-qmp", qmp_arg, "-qmp",
		    guest_arg, (char *)NULL);
		_exit(127);
	}
	CU_ASSERT_FATAL(vm->pid > 0);
	snprintf(ep.path, sizeof ep.path, "%s", vm->guest_path);
	for (i = 0; i < 1000; i++) {
		/* The second monitor is created last: once it accepts, both do. */
		fd = transport_connect(&ep, 1000, &st);
		if (fd >= 0) {
			close(fd);
			break;
		}
		CU_ASSERT_FATAL(waitpid(vm->pid, NULL, WNOHANG) == 0);
		fd_wait(-1, 0, time_mono_ms() + 10); /* poll(2) on nothing: a 10 ms pause */
	}
	CU_ASSERT_FATAL(fd >= 0);
	vm->guest = qmp_new(vm->guest_path, 5000);
	vm->qmp = qmp_new(vm->qmp_path, 5000);
}

static void
vm_setup(struct vm *vm)
{
	int fd;

	memset(vm, 0, sizeof *vm);
	snprintf(vm->dir, sizeof vm->dir, "/tmp/vmshim-test-vm.XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(vm->dir) != NULL);
	snprintf(vm->qmp_path, sizeof vm->qmp_path, "%s/qmp.sock", vm->dir);
	snprintf(vm->guest_path, sizeof vm->guest_path, "%s/guest.sock", vm->dir);
	snprintf(vm->image, sizeof vm->image, "%s/disk.img", vm->dir);
	snprintf(vm->image2, sizeof vm->image2, "%s/disk2.img", vm->dir);
	fd = open(vm->image, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(ftruncate(fd, 8 << 20) == 0);
	close(fd);
	fd = open(vm->image2, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(ftruncate(fd, 8 << 20) == 0);
	close(fd);
	vm_start(vm);
}

static void
vm_kill(struct vm *vm)
{
	if (vm->pid > 0) {
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, NULL, 0);
		vm->pid = 0;
	}
}

static void
vm_teardown(struct vm *vm)
{
	char cmd[128];

	qmp_free(vm->qmp);
	qmp_free(vm->guest);
	vm_kill(vm);
	snprintf(cmd, sizeof cmd, "rm -rf %s", vm->dir);
	CU_ASSERT(system(cmd) == 0);
}

/* Does query-named-block-nodes list a node whose name contains part? */
static bool
vm_has_node_prefix(struct vm *vm, const char *part)
{
	json_t *ret = NULL, *e;
	struct status st;
	size_t i;
	bool found = false;

	CU_ASSERT_FATAL(
	    qmp_execute(vm->guest, "query-named-block-nodes", NULL, 5000, &ret, &st) == 0);
	json_array_foreach (ret, i, e) {
		json_t *n = json_object_get(e, "node-name");
		if (json_is_string(n) && strstr(json_string_value(n), part) != NULL)
			found = true;
	}
	json_decref(ret);
	return found;
}

/* How many vmshim-* nodes exist, and how many peripherals (devices we added)? */
static void
vm_counts(struct vm *vm, int *nodes, int *devices)
{
	json_t *ret = NULL, *e, *args;
	struct status st;
	size_t i;

	*nodes = *devices = 0;
	CU_ASSERT_FATAL(
	    qmp_execute(vm->guest, "query-named-block-nodes", NULL, 5000, &ret, &st) == 0);
	json_array_foreach (ret, i, e) {
		json_t *n = json_object_get(e, "node-name");
		if (json_is_string(n) && strncmp(json_string_value(n), "vmshim-", 7) == 0)
			(*nodes)++;
	}
	json_decref(ret);
	args = json_pack("{s:s}", "path", "/machine/peripheral");
	CU_ASSERT_FATAL(qmp_execute(vm->guest, "qom-list", args, 5000, &ret, &st) == 0);
	json_decref(args);
	json_array_foreach (ret, i, e) {
		json_t *n = json_object_get(e, "name");
		if (json_is_string(n) && strncmp(json_string_value(n), "vmshim-", 7) == 0 &&
		    strstr(json_string_value(n), "-dev") != NULL)
			(*devices)++;
	}
	json_decref(ret);
}

/* Does query-block show a device whose qdev path names dev? */
static bool
vm_block_has_device(struct vm *vm, const char *dev)
{
	json_t *ret = NULL, *e;
	struct status st;
	size_t i;
	bool found = false;

	CU_ASSERT_FATAL(qmp_execute(vm->guest, "query-block", NULL, 5000, &ret, &st) == 0);
	json_array_foreach (ret, i, e) {
		json_t *q = json_object_get(e, "qdev");
		if (json_is_string(q) && strstr(json_string_value(q), dev) != NULL)
			found = true;
	}
	json_decref(ret);
	return found;
}

static void
test_qmp_commands(void)
{
	struct vm vm;
	json_t *ret = NULL;
	struct status st;

	vm_setup(&vm);
	CU_ASSERT_EQUAL(qmp_execute(vm.qmp, "query-status", NULL, 5000, &ret, &st), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ret, "status")), "prelaunch");
	json_decref(ret);
	/* QEMU's own error text reaches the status. */
	CU_ASSERT_EQUAL(qmp_execute(vm.qmp, "no-such-command", NULL, 5000, &ret, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNIMPLEMENTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "no-such-command"));
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "not been found"));
	vm_teardown(&vm);
}

static void
test_qmp_parse(void)
{
	struct qmp_msg m;
	struct status st;
	static const char *bad[] = {"", "x", "[]", "{}", "{\"error\":1}",
	    "{\"error\":{\"class\":1,\"desc\":\"d\"}}", "{\"event\":5}", "{\"unknown\":1}"};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		CU_ASSERT_EQUAL(qmp_msg_parse(bad[i], strlen(bad[i]), &m, &st), -1);
		CU_ASSERT_PTR_NULL(m.root);
	}
	CU_ASSERT_EQUAL(qmp_msg_parse("{\"return\":{},\"id\":\"a\"}", 22, &m, &st), 0);
	CU_ASSERT_EQUAL(m.kind, QMP_MSG_RETURN);
	CU_ASSERT_STRING_EQUAL(m.id, "a");
	qmp_msg_clear(&m);
	/* A non-string id belongs to nobody. */
	CU_ASSERT_EQUAL(qmp_msg_parse("{\"return\":{},\"id\":7}", 20, &m, &st), 0);
	CU_ASSERT_PTR_NULL(m.id);
	qmp_msg_clear(&m);
}

static void
test_attach_detach(void)
{
	struct vm vm;
	struct vm_disks *d;
	char serial[VM_DISK_SERIAL_MAX + 1], serial2[VM_DISK_SERIAL_MAX + 1];
	struct status st;
	size_t nfree, used, stuck;

	vm_setup(&vm);
	d = vm_disks_new(vm.qmp, ports, 3, 10000, 5000);
	CU_ASSERT_EQUAL_FATAL(vm_disk_attach(d, "container-one", vm.image, false, serial, &st), 0);
	CU_ASSERT(strlen(serial) <= VM_DISK_SERIAL_MAX);
	CU_ASSERT(strlen(serial) > 0);
	CU_ASSERT(vm_block_has_device(&vm, "-dev1"));
	CU_ASSERT(vm_has_node_prefix(&vm, "-disk1"));
	CU_ASSERT_EQUAL(vm_disk_attach(d, "container-two", vm.image2, true, serial2, &st), 0);
	CU_ASSERT_STRING_NOT_EQUAL(serial, serial2);
	/* One disk per container. */
	CU_ASSERT_EQUAL(vm_disk_attach(d, "container-one", vm.image, false, serial2, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_ALREADY_EXISTS);
	vm_disks_counts(d, &nfree, &used, &stuck);
	CU_ASSERT_EQUAL(nfree, 1);
	CU_ASSERT_EQUAL(used, 2);

	vm_disks_free(d);
	vm_teardown(&vm);
}

struct detach_arg {
	struct vm_disks *d;
	const char *id;
	int r;
	struct status st;
};

static void *
detach_thread(void *p)
{
	struct detach_arg *a = p;

	a->r = vm_disk_detach(a->d, a->id, &a->st);
	return NULL;
}

/* The guest acknowledges a pending unplug: with no guest OS, a reset completes it. */
static void
guest_ack_unplug(struct vm *vm)
{
	struct status st;

	CU_ASSERT_EQUAL(qmp_execute(vm->guest, "system_reset", NULL, 5000, NULL, &st), 0);
}

static void
test_detach_with_guest_ack(void)
{
	struct vm vm;
	struct vm_disks *d;
	char serial[VM_DISK_SERIAL_MAX + 1];
	struct detach_arg a = {0};
	pthread_t t;
	size_t nfree, used, stuck;
	int nodes, devs, i;
	uint64_t seq;
	struct status st;

	vm_setup(&vm);
	d = vm_disks_new(vm.qmp, ports, 3, 20000, 5000);
	CU_ASSERT_EQUAL_FATAL(vm_disk_attach(d, "c1", vm.image, false, serial, &st), 0);
	vm_counts(&vm, &nodes, &devs);
	CU_ASSERT_EQUAL(nodes, 2);
	CU_ASSERT_EQUAL(devs, 1);

	a.d = d;
	a.id = "c1";
	seq = qmp_event_seq(vm.guest);
	CU_ASSERT_EQUAL(pthread_create(&t, NULL, detach_thread, &a), 0);
	/*
	 * The reset must come after device_del. Resetting repeatedly until the detach thread
	 * has its DEVICE_DELETED is the guest acking whenever the request reaches it.
	 */
	for (i = 0; i < 200; i++) {
		guest_ack_unplug(&vm);
		if (qmp_wait_event(
			vm.guest, seq, "DEVICE_DELETED", NULL, time_mono_ms() + 100, &st) == 0)
			break;
	}
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(a.r, 0);
	vm_counts(&vm, &nodes, &devs);
	CU_ASSERT_EQUAL(nodes, 0);
	CU_ASSERT_EQUAL(devs, 0);
	CU_ASSERT_FALSE(vm_block_has_device(&vm, "-dev1"));
	vm_disks_counts(d, &nfree, &used, &stuck);
	CU_ASSERT_EQUAL(nfree, 3);
	/* Detaching again is a no-op. */
	CU_ASSERT_EQUAL(vm_disk_detach(d, "c1", &st), 0);
	vm_disks_free(d);
	vm_teardown(&vm);
}

static void
test_detach_timeout_keeps_port(void)
{
	struct vm vm;
	struct vm_disks *d;
	char serial[VM_DISK_SERIAL_MAX + 1];
	struct status st;
	size_t nfree, used, stuck;

	vm_setup(&vm);
	d = vm_disks_new(vm.qmp, ports, 1, 300, 5000);
	CU_ASSERT_EQUAL_FATAL(vm_disk_attach(d, "c1", vm.image, false, serial, &st), 0);
	/* No guest ack: the unplug never completes. */
	CU_ASSERT_EQUAL(vm_disk_detach(d, "c1", &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_DEADLINE_EXCEEDED);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "not released"));
	vm_disks_counts(d, &nfree, &used, &stuck);
	CU_ASSERT_EQUAL(stuck, 1);
	CU_ASSERT_EQUAL(nfree, 0);
	/* The stuck port is never reused, not even by a new container of the same id. */
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c2", vm.image, false, serial, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_RESOURCE_EXHAUSTED);
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c1", vm.image2, false, serial, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_RESOURCE_EXHAUSTED);
	/* Detaching the deleted container again does nothing. */
	CU_ASSERT_EQUAL(vm_disk_detach(d, "c1", &st), 0);
	vm_disks_free(d);
	vm_teardown(&vm);
}

/* QEMU gone during a Delete: the port is kept out of use, not left USED under the old id. */
static void
test_detach_fails_keeps_port(void)
{
	struct vm vm;
	struct vm_disks *d;
	char serial[VM_DISK_SERIAL_MAX + 1];
	struct status st;
	size_t nfree, used, stuck;

	vm_setup(&vm);
	d = vm_disks_new(vm.qmp, ports, 1, 1000, 2000);
	CU_ASSERT_EQUAL_FATAL(vm_disk_attach(d, "c1", vm.image, false, serial, &st), 0);
	vm_kill(&vm);
	CU_ASSERT_EQUAL(vm_disk_detach(d, "c1", &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	vm_disks_counts(d, &nfree, &used, &stuck);
	CU_ASSERT_EQUAL(stuck, 1);
	CU_ASSERT_EQUAL(used, 0);
	/* A new container of the same id is not told it "already has a disk". */
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c1", vm.image2, false, serial, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_RESOURCE_EXHAUSTED);
	vm_disks_free(d);
	vm_teardown(&vm);
}

static void
test_attach_failures_roll_back(void)
{
	struct vm vm;
	struct vm_disks *d;
	static const char *const bad_ports[] = {"no-such-port"};
	char serial[VM_DISK_SERIAL_MAX + 1];
	char missing[160];
	struct status st;
	size_t nfree, used, stuck;
	int nodes, devs;

	vm_setup(&vm);
	d = vm_disks_new(vm.qmp, ports, 2, 1000, 5000);
	/* A missing image: clear status, nothing attached. */
	snprintf(missing, sizeof missing, "%s/missing.img", vm.dir);
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c1", missing, false, serial, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_NOT_FOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "missing.img"));
	/* Not a file nor a block device. */
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c1", vm.dir, false, serial, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	/* All ports taken. */
	CU_ASSERT_EQUAL(vm_disk_attach(d, "a", vm.image, true, serial, &st), 0);
	CU_ASSERT_EQUAL(vm_disk_attach(d, "b", vm.image, true, serial, &st), 0);
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c", vm.image, true, serial, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_RESOURCE_EXHAUSTED);
	vm_disks_free(d);

	/* device_add fails (the port does not exist): both nodes rolled back, port free. */
	d = vm_disks_new(vm.qmp, bad_ports, 1, 1000, 5000);
	vm_counts(&vm, &nodes, &devs);
	CU_ASSERT_EQUAL(nodes, 4);
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c9", vm.image, false, serial, &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "device_add"));
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "no-such-port"));
	vm_counts(&vm, &nodes, &devs);
	CU_ASSERT_EQUAL(nodes, 4);
	CU_ASSERT_EQUAL(devs, 2);
	vm_disks_counts(d, &nfree, &used, &stuck);
	CU_ASSERT_EQUAL(nfree, 1);
	vm_disks_free(d);
	vm_teardown(&vm);
}

static void
test_qemu_goes_away(void)
{
	struct vm vm;
	struct vm_disks *d;
	char serial[VM_DISK_SERIAL_MAX + 1];
	struct status st;
	size_t nfree, used, stuck;
	json_t *ret = NULL;

	vm_setup(&vm);
	d = vm_disks_new(vm.qmp, ports, 3, 1000, 2000);
	CU_ASSERT_EQUAL(qmp_execute(vm.qmp, "query-status", NULL, 5000, NULL, &st), 0);
	vm_kill(&vm);
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c1", vm.image, false, serial, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	vm_disks_counts(d, &nfree, &used, &stuck);
	CU_ASSERT_EQUAL(nfree, 3);
	/* QEMU is back at the same socket: the channel reconnects on the next command. */
	qmp_free(vm.guest);
	qmp_free(vm.qmp);
	unlink(vm.qmp_path);
	unlink(vm.guest_path);
	vm_start(&vm);
	vm_disks_free(d);
	d = vm_disks_new(vm.qmp, ports, 3, 1000, 2000);
	CU_ASSERT_EQUAL(qmp_execute(vm.qmp, "query-status", NULL, 5000, &ret, &st), 0);
	json_decref(ret);
	CU_ASSERT_EQUAL(vm_disk_attach(d, "c1", vm.image, false, serial, &st), 0);
	vm_disks_free(d);
	vm_teardown(&vm);
}

static void
test_reconnect_same_channel(void)
{
	struct vm vm;
	struct qmp *keep;
	struct status st;

	vm_setup(&vm);
	keep = vm.qmp;
	CU_ASSERT_EQUAL(qmp_execute(keep, "query-status", NULL, 5000, NULL, &st), 0);
	vm_kill(&vm);
	CU_ASSERT_EQUAL(qmp_execute(keep, "query-status", NULL, 2000, NULL, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_UNAVAILABLE);
	/* Restart QEMU; the same channel object must reconnect by itself. */
	qmp_free(vm.guest);
	unlink(vm.qmp_path);
	unlink(vm.guest_path);
	vm_start(&vm);
	qmp_free(vm.qmp); /* vm_start made a new one; we test the old one */
	vm.qmp = keep;
	CU_ASSERT_EQUAL(qmp_execute(keep, "query-status", NULL, 5000, NULL, &st), 0);
	vm_teardown(&vm);
}

/* ---- the bring-up lock ---- */

struct span_arg {
	struct vm_bringup *b;
	atomic_int *inside;
	atomic_int *max_inside;
	char id[16];
};

static void *
span_thread(void *p)
{
	struct span_arg *a = p;
	int now, max;

	vm_bringup_begin(a->b, a->id);
	now = atomic_fetch_add(a->inside, 1) + 1;
	max = atomic_load(a->max_inside);
	while (now > max && !atomic_compare_exchange_weak(a->max_inside, &max, now))
		;
	/* A bring-up takes a while (a real one talks to QEMU and the guest). */
	fd_wait(-1, 0, time_mono_ms() + 30);
	atomic_fetch_sub(a->inside, 1);
	vm_bringup_end(a->b, a->id);
	return NULL;
}

static int
run_spans(bool confidential)
{
	struct span_arg a[8];
	pthread_t t[8];
	atomic_int inside = 0, max_inside = 0;
	struct vm_bringup *b = vm_bringup_new(confidential);
	int i;

	for (i = 0; i < 8; i++) {
		a[i].b = b;
		a[i].inside = &inside;
		a[i].max_inside = &max_inside;
		snprintf(a[i].id, sizeof a[i].id, "c%d", i);
		CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, span_thread, &a[i]), 0);
	}
	for (i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	vm_bringup_free(b);
	return atomic_load(&max_inside);
}

static void
test_bringup_lock(void)
{
	int conf = run_spans(true);
	int plain = run_spans(false);

	printf("\n    max concurrent bring-ups: confidential %d, ordinary %d\n", conf, plain);
	CU_ASSERT_EQUAL(conf, 1);
	CU_ASSERT(plain > 1);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"QMP message parsing", test_qmp_parse},
	    {"bring-up lock: confidential serializes, ordinary overlaps", test_bringup_lock},
	    {"QMP commands and QEMU's errors", test_qmp_commands},
	    {"attach: query-block shows node and device, serials unique", test_attach_detach},
	    {"detach with the guest's ack: device and nodes gone", test_detach_with_guest_ack},
	    {"detach timeout: port reported and kept out of use", test_detach_timeout_keeps_port},
	    {"attach failures roll back", test_attach_failures_roll_back},
	    {"detach with QEMU gone keeps the port out of use", test_detach_fails_keeps_port},
	    {"QEMU killed: UNAVAILABLE, then reconnect", test_qemu_goes_away},
	    {"a channel reconnects after QEMU restarts", test_reconnect_same_channel},
	    {NULL, NULL},
	};
	char *path = getenv("PATH");
	char buf[4096], *dir, *save = NULL;
	bool found = false;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
	for (dir = strtok_r(buf, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
		char p[4200];
		snprintf(p, sizeof p, "%s/%s", dir, qemu_bin);
		if (access(p, X_OK) == 0)
			found = true;
	}
	if (!found)
		unit_skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)");
	return unit_main("vm", cases);
}
