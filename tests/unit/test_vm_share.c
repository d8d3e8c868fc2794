/*
 * test_vm_share.c: the microVM's root filesystem share and its mounter (shim/vm-share.c).
 *
 * As root, the real mounter is forked (as the shim does before seccomp) over a temporary state
 * directory: a bind of a directory is mounted on STATE/share/ID, nosuid and nodev, and seen
 * there; a symlink planted at STATE/share/ID (the guest can write the share's root) is
 * replaced, not mounted through; types other than overlay and bind, a bind of "/", and a
 * second mount of a live id are refused; unmount is idempotent; closing the mounter's socket
 * (vm_share_stop) unmounts what is left and removes the share; `delete`'s cleanup unmounts
 * real mount points and removes planted symlinks without following them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"
#include "testlib.h"
#include "unit.h"
#include "util.h"

static char state[] = "/tmp/test_vm_share.XXXXXX";
static char src[64], victim[64];

static int
share_mount(const char *id, const char *json, struct status *st)
{
	json_t *l = json_loads(json, 0, NULL);
	int r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	r = vm_share_mount(id, l, 5000, st);
	json_decref(l);
	return r;
}

static void
test_mounter(void)
{
	char json[512], target[128], opts[512], file[160];
	struct status st;

	snprintf(json, sizeof json,
	    "[{\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"rbind\"]}]", src);
	CU_ASSERT_EQUAL_FATAL(share_mount("c1", json, &st), 0);
	snprintf(target, sizeof target, "%s/share/c1", state);
	CU_ASSERT(testlib_mounted(target, opts, sizeof opts));
	CU_ASSERT_PTR_NOT_NULL(strstr(opts, "nosuid"));
	CU_ASSERT_PTR_NOT_NULL(strstr(opts, "nodev"));
	snprintf(file, sizeof file, "%s/hello", target);
	CU_ASSERT_EQUAL(access(file, R_OK), 0);

	/* The same id while mounted; then types and sources the share does not take. */
	CU_ASSERT_EQUAL(share_mount("c1", json, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_ALREADY_EXISTS);
	CU_ASSERT_EQUAL(share_mount("c2", "[{\"type\":\"tmpfs\",\"source\":\"tmpfs\"}]", &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(share_mount("c2",
			    "[{\"type\":\"bind\",\"source\":\"//\",\"options\":[\"rbind\"]}]", &st),
	    -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(share_mount("../x", json, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);

	/* A symlink planted where c3 goes: replaced by a directory, its target left alone. */
	snprintf(target, sizeof target, "%s/share/c3", state);
	CU_ASSERT_EQUAL(symlink(victim, target), 0);
	CU_ASSERT_EQUAL(share_mount("c3", json, &st), 0);
	CU_ASSERT(testlib_mounted(target, NULL, 0));
	CU_ASSERT(!testlib_mounted(victim, NULL, 0));

	/* Unmount, twice (idempotent). */
	CU_ASSERT_EQUAL(vm_share_unmount("c3", 5000, &st), 0);
	CU_ASSERT(!testlib_mounted(target, NULL, 0));
	CU_ASSERT_EQUAL(access(target, F_OK), -1);
	CU_ASSERT_EQUAL(vm_share_unmount("c3", 5000, &st), 0);

	/* Closing the socket: the mounter unmounts c1 and the share is removed. */
	snprintf(target, sizeof target, "%s/share/c1", state);
	CU_ASSERT(vm_share_stop());
	CU_ASSERT(!testlib_mounted(target, NULL, 0));
	snprintf(target, sizeof target, "%s/share", state);
	CU_ASSERT_EQUAL(access(target, F_OK), -1);
	CU_ASSERT(!vm_share_active());
}

static void
test_delete_cleanup(void)
{
	char share[128], real[160], link[160];

	/* What a dead shim's mounter left, and what a guest planted. */
	snprintf(share, sizeof share, "%s/share", state);
	snprintf(real, sizeof real, "%s/c1", share);
	snprintf(link, sizeof link, "%s/planted", share);
	CU_ASSERT_EQUAL_FATAL(mkdir(share, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir(real, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(mount("tmpfs", real, "tmpfs", 0, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(mount("tmpfs", victim, "tmpfs", 0, NULL), 0);
	CU_ASSERT_EQUAL(symlink(victim, link), 0);
	vm_share_cleanup(state);
	CU_ASSERT(!testlib_mounted(real, NULL, 0));
	CU_ASSERT(testlib_mounted(victim, NULL, 0)); /* not unmounted through the symlink */
	CU_ASSERT_EQUAL(access(share, F_OK), -1);
	umount2(victim, MNT_DETACH);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"the mounter: bind, refusals, a planted symlink, unmount, stop", test_mounter},
	    {"delete's cleanup: unmounts, never through a symlink", test_delete_cleanup},
	    {NULL, NULL},
	};
	struct status st;
	char file[96];
	FILE *f;
	int r;

	log_set_level(LOG_ERROR);
	if (geteuid() != 0)
		unit_skip("mounting needs root");
	if (mkdtemp(state) == NULL)
		return 2;
	snprintf(src, sizeof src, "%s.src", state);
	snprintf(victim, sizeof victim, "%s.victim", state);
	mkdir(src, 0700);
	mkdir(victim, 0700);
	snprintf(file, sizeof file, "%s/hello", src);
	if ((f = fopen(file, "w")) != NULL)
		fclose(f);
	/* Before any thread, as the shim does. */
	if (vm_share_start(state, &st) < 0) {
		fprintf(stderr, "vm_share_start: %s\n", st.msg);
		return 2;
	}
	r = unit_main("vm_share", cases);
	unlink(file);
	rmdir(src);
	rmdir(victim);
	rmdir(state);
	return r;
}
