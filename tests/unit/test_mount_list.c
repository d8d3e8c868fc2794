/*
 * test_mount_list.c: containerd's root filesystem list, checked and mounted on the host
 * (common/mount-list.c), as the local VM's agent and the microVM's mounter use it.
 *
 * The checks refuse every malformed list before anything is mounted, naming the entry. The
 * mount cases need root (CAP_SYS_ADMIN): a read-only bind of a directory is mounted and seen
 * read-only, a list whose second entry fails leaves nothing mounted and no mount point, undo
 * removes stacked mounts, and a symlink in the target's place is neither mounted through nor
 * unmounted through. Without root only the checks run.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount-list.h"
#include "testlib.h"
#include "unit.h"
#include "util.h"

static void
check_refused(const char *json, const char *want)
{
	json_t *l = json_loads(json, 0, NULL);
	struct status st;

	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	status_clear(&st);
	CU_ASSERT_EQUAL(mount_list_check(l, "rootfs", &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	if (strstr(st.msg, want) == NULL)
		fprintf(stderr, "message '%s' lacks '%s'\n", st.msg, want);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, want));
	json_decref(l);
}

static void
test_check(void)
{
	char big[MOUNT_LIST_DATA_MAX + 64], many[2048];
	json_t *l;
	struct status st;
	size_t n = 0;

	check_refused("{}", "rootfs: expected an array");
	check_refused("[7]", "rootfs[0]");
	check_refused("[{\"source\":\"x\"}]", "rootfs[0]");
	check_refused("[{\"type\":\"\",\"source\":\"x\"}]", "rootfs[0].type: must not be empty");
	check_refused("[{\"type\":\"bind\",\"source\":\"/a\"},{\"type\":\"bind\",\"source\":\"/b\","
		      "\"options\":[\"ro\",7]}]",
	    "rootfs[1].options[1]: expected a string");
	memset(big, 'x', sizeof big);
	memcpy(big, "[{\"type\":\"overlay\",\"source\":\"o\",\"options\":[\"lowerdir=", 52);
	snprintf(big + sizeof big - 6, 6, "\"]}]");
	check_refused(big, "rootfs[0].options: longer than");
	n += (size_t)snprintf(many, sizeof many, "[");
	for (int i = 0; i <= MOUNT_LIST_MAX; i++)
		n += (size_t)snprintf(many + n, sizeof many - n,
		    "%s{\"type\":\"bind\",\"source\":\"/\"}", i ? "," : "");
	snprintf(many + n, sizeof many - n, "]");
	check_refused(many, "more than 16 mounts");

	l = json_loads("[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":[\"lowerdir=/a\","
		       "\"upperdir=/b\",\"workdir=/c\",\"nosuid\"]},{\"type\":\"bind\",\"source\":"
		       "\"\"}]",
	    0, NULL);
	CU_ASSERT_EQUAL(mount_list_check(l, "rootfs", &st), 0);
	json_decref(l);
}

static void
test_apply_undo(void)
{
	char dir[] = "/tmp/test_mount_list.XXXXXX", src[4200], target[4200], file[4300], json[9000];
	json_t *l;
	struct status st;
	FILE *f;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(src, sizeof src, "%s/src", dir);
	snprintf(target, sizeof target, "%s/share/c1", dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(src, 0700), 0);
	snprintf(file, sizeof file, "%s/hello", src);
	f = fopen(file, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("hi\n", f);
	fclose(f);

	/* A tmpfs, then a read-only bind stacked on it: the bind is what the target shows. */
	snprintf(json, sizeof json,
	    "[{\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"size=1m\"]},"
	    "{\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"rbind\",\"ro\"]}]",
	    src);
	l = json_loads(json, 0, NULL);
	CU_ASSERT_EQUAL_FATAL(mount_list_check(l, "rootfs", &st), 0);
	CU_ASSERT_EQUAL_FATAL(mount_list_apply(l, target, 0, &st), 0);
	snprintf(file, sizeof file, "%s/hello", target);
	CU_ASSERT_EQUAL(access(file, R_OK), 0);
	snprintf(file, sizeof file, "%s/new", target);
	CU_ASSERT_PTR_NULL(fopen(file, "w"));
	CU_ASSERT_EQUAL(errno, EROFS);
	CU_ASSERT(testlib_mounted(target, NULL, 0));
	CU_ASSERT_EQUAL(mount_list_undo(target), 0);
	CU_ASSERT(!testlib_mounted(target, NULL, 0));
	CU_ASSERT_EQUAL(access(target, F_OK), -1);
	json_decref(l);

	/* The second entry fails: the first is unmounted again and the mount point removed. */
	snprintf(json, sizeof json,
	    "[{\"type\":\"tmpfs\",\"source\":\"tmpfs\"},"
	    "{\"type\":\"bind\",\"source\":\"%s/nonexistent\"}]",
	    dir);
	l = json_loads(json, 0, NULL);
	CU_ASSERT_EQUAL(mount_list_check(l, "rootfs", &st), 0);
	CU_ASSERT_EQUAL(mount_list_apply(l, target, 0, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INTERNAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "mount [1] (bind "));
	CU_ASSERT(!testlib_mounted(target, NULL, 0));
	CU_ASSERT_EQUAL(access(target, F_OK), -1);
	json_decref(l);

	/*
	 * Someone else may write where the target goes (the guest, in the microVM's share): a
	 * symlink there is replaced, not followed, and undo removes one without unmounting
	 * what it points at.
	 */
	snprintf(file, sizeof file, "%s/share", dir);
	mkdir(file, 0700);
	CU_ASSERT_EQUAL(symlink(src, target), 0);
	snprintf(json, sizeof json, "[{\"type\":\"tmpfs\",\"source\":\"tmpfs\"}]");
	l = json_loads(json, 0, NULL);
	CU_ASSERT_EQUAL_FATAL(mount_list_apply(l, target, 0, &st), 0);
	CU_ASSERT(testlib_mounted(target, NULL, 0));
	CU_ASSERT(!testlib_mounted(src, NULL, 0));
	CU_ASSERT_EQUAL(mount_list_undo(target), 0);
	CU_ASSERT(!testlib_mounted(target, NULL, 0));
	CU_ASSERT_EQUAL(mount("tmpfs", src, "tmpfs", 0, NULL), 0);
	CU_ASSERT_EQUAL(symlink(src, target), 0);
	CU_ASSERT_EQUAL(mount_list_undo(target), 0);
	CU_ASSERT(testlib_mounted(src, NULL, 0)); /* the symlink's target kept its mount */
	CU_ASSERT_EQUAL(access(target, F_OK), -1);
	CU_ASSERT_EQUAL(umount2(src, MNT_DETACH), 0);
	json_decref(l);

	/* Undo of a target that is not there is fine (idempotent). */
	CU_ASSERT_EQUAL(mount_list_undo(target), 0);
	snprintf(file, sizeof file, "%s/hello", src);
	unlink(file);
	rmdir(src);
	snprintf(file, sizeof file, "%s/share", dir);
	rmdir(file);
	CU_ASSERT_EQUAL(rmdir(dir), 0);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"malformed lists are refused, naming the entry", test_check},
	    {"apply mounts in order, undo removes everything", test_apply_undo},
	    {NULL, NULL},
	};
	static const struct unit_case unprivileged[] = {
	    {"malformed lists are refused, naming the entry", test_check},
	    {NULL, NULL},
	};

	/* Mounting needs root; the checks do not. */
	return unit_main("mount_list", geteuid() == 0 ? cases : unprivileged);
}
