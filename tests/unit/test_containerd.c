/*
 * test_containerd.c: shim/containerd.c, what `start` and `delete` exchange with containerd
 * outside the Task API: a bundle's group (io.vmshim.group, else io.kubernetes.cri.sandbox-id,
 * else the id; names that could not be file names refused), the runtime options on start's
 * stdin (an Any of runtimeoptions.v1.Options, either type URL form; other types ignored;
 * garbage refused), the bundle's address file, and the protobuf DeleteResponse (decoded back
 * with the generated code).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtimeoptions.pb-c.h"
#include "shim.h"
#include "shim.pb-c.h"
#include "unit.h"
#include "util.h"
#include "wkt.pb-c.h"

static char tmpdir[] = "/tmp/test_containerd.XXXXXX";

static void
write_spec(const char *text)
{
	char path[300];
	FILE *f;

	snprintf(path, sizeof path, "%s/config.json", tmpdir);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

/* The group of the bundle in tmpdir, or NULL with *st set. */
static char *
group_of(const char *spec, const char *id, struct status *st)
{
	char *g = NULL;

	write_spec(spec);
	if (containerd_group(tmpdir, id, &g, st) < 0)
		return NULL;
	return g;
}

static void
test_group(void)
{
	struct status st;
	char *g;

	g = group_of("{\"annotations\": {\"io.vmshim.group\": \"pod1\","
		     " \"io.kubernetes.cri.sandbox-id\": \"sb\"}}",
	    "c1", &st);
	CU_ASSERT_STRING_EQUAL(g, "pod1");
	free(g);
	g = group_of("{\"annotations\": {\"io.kubernetes.cri.sandbox-id\": \"sb\"}}", "c1", &st);
	CU_ASSERT_STRING_EQUAL(g, "sb");
	free(g);
	g = group_of("{\"annotations\": {\"other\": \"x\"}}", "c1", &st);
	CU_ASSERT_STRING_EQUAL(g, "c1");
	free(g);
	CU_ASSERT_EQUAL(containerd_group(NULL, "c2", &g, &st), 0);
	CU_ASSERT_STRING_EQUAL(g, "c2");
	free(g);

	/* A group names files: no slash, no leading dot, not empty, a string. */
	CU_ASSERT_PTR_NULL(
	    group_of("{\"annotations\": {\"io.vmshim.group\": \"../x\"}}", "c1", &st));
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "io.vmshim.group"));
	CU_ASSERT_PTR_NULL(
	    group_of("{\"annotations\": {\"io.vmshim.group\": \"a/b\"}}", "c1", &st));
	CU_ASSERT_PTR_NULL(group_of("{\"annotations\": {\"io.vmshim.group\": \"\"}}", "c1", &st));
	CU_ASSERT_PTR_NULL(group_of("{\"annotations\": {\"io.vmshim.group\": 3}}", "c1", &st));
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "expected a string"));
	CU_ASSERT_PTR_NULL(group_of("{\"annotations\": {}}", "x/y", &st));
	CU_ASSERT_PTR_NULL(group_of("{\"annotations\": {}}", NULL, &st));
	CU_ASSERT_PTR_NULL(group_of("{\"annotations\": ", "c1", &st));
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "config.json: line"));

	/* The container id rule (protocol.h): at most PROTOCOL_ID_MAX bytes. */
	{
		char spec[PROTOCOL_ID_MAX + 100], name[PROTOCOL_ID_MAX + 2];

		memset(name, 'g', sizeof name - 1);
		name[sizeof name - 1] = '\0';
		snprintf(
		    spec, sizeof spec, "{\"annotations\": {\"io.vmshim.group\": \"%s\"}}", name);
		CU_ASSERT_PTR_NULL(group_of(spec, "c1", &st));
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "longer than"));
		name[PROTOCOL_ID_MAX] = '\0';
		snprintf(
		    spec, sizeof spec, "{\"annotations\": {\"io.vmshim.group\": \"%s\"}}", name);
		g = group_of(spec, "c1", &st);
		CU_ASSERT_PTR_NOT_NULL(g);
		free(g);
	}
}

/* A bundle's config.json that is a FIFO nobody writes is refused at once, never waited on. */
static void
test_group_fifo(void)
{
	char path[300];
	struct status st;
	char *g = NULL;

	snprintf(path, sizeof path, "%s/config.json", tmpdir);
	unlink(path);
	CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
	CU_ASSERT_EQUAL(containerd_group(tmpdir, "c1", &g, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "not a regular file"));
	CU_ASSERT_PTR_NULL(g);
	unlink(path);
}

/* An Any of type_url wrapping runtimeoptions.v1.Options{config_path}, packed. */
static uint8_t *
pack_options(const char *type_url, const char *config_path, size_t *len)
{
	Runtimeoptions__V1__Options o = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	uint8_t *inner, *out;

	o.config_path = (char *)config_path;
	inner = xmalloc(runtimeoptions__v1__options__get_packed_size(&o) + 1);
	any.type_url = (char *)type_url;
	any.value.len = runtimeoptions__v1__options__pack(&o, inner);
	any.value.data = inner;
	out = xmalloc(google__protobuf__any__get_packed_size(&any) + 1);
	*len = google__protobuf__any__pack(&any, out);
	free(inner);
	return out;
}

static void
test_options(void)
{
	struct status st;
	uint8_t *buf;
	size_t len;
	char *path = NULL;

	CU_ASSERT_EQUAL(containerd_options_config_path(NULL, 0, &path, &st), 0);
	CU_ASSERT_PTR_NULL(path);
	buf = pack_options("runtimeoptions.v1.Options", "/etc/vmshim/k8s.json", &len);
	CU_ASSERT_EQUAL(containerd_options_config_path(buf, len, &path, &st), 0);
	CU_ASSERT_STRING_EQUAL(path, "/etc/vmshim/k8s.json");
	free(path);
	free(buf);
	buf = pack_options("type.googleapis.com/runtimeoptions.v1.Options", "/a.json", &len);
	CU_ASSERT_EQUAL(containerd_options_config_path(buf, len, &path, &st), 0);
	CU_ASSERT_STRING_EQUAL(path, "/a.json");
	free(path);
	free(buf);
	/* Another shim's options carry nothing for us. */
	buf = pack_options("containerd.runc.v1.Options", "/b.json", &len);
	CU_ASSERT_EQUAL(containerd_options_config_path(buf, len, &path, &st), 0);
	CU_ASSERT_PTR_NULL(path);
	free(buf);
	buf = pack_options("runtimeoptions.v1.Options", "", &len);
	CU_ASSERT_EQUAL(containerd_options_config_path(buf, len, &path, &st), 0);
	CU_ASSERT_PTR_NULL(path);
	free(buf);
	/* Not protobuf. */
	CU_ASSERT_EQUAL(
	    containerd_options_config_path((const uint8_t *)"{\"x\":1}", 7, &path, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "runtime options on stdin"));
}

static void
test_address_file(void)
{
	char path[300], buf[128];
	struct status st;
	FILE *f;
	size_t n;

	CU_ASSERT_EQUAL(containerd_write_address(tmpdir, "unix:///run/vmshim/ns/g.sock", &st), 0);
	snprintf(path, sizeof path, "%s/address", tmpdir);
	f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	CU_ASSERT_STRING_EQUAL(buf, "unix:///run/vmshim/ns/g.sock");
	CU_ASSERT_EQUAL(containerd_write_address("/nonexistent/dir", "x", &st), -1);
	unlink(path);
}

static void
test_delete_response(void)
{
	struct timespec at = {.tv_sec = 1700000000, .tv_nsec = 123456789};
	Containerd__Task__V2__DeleteResponse *r;
	uint8_t *buf = NULL;
	size_t len = containerd_delete_response(0, 137, &at, &buf);

	r = containerd__task__v2__delete_response__unpack(NULL, len, buf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->pid, 0);
	CU_ASSERT_EQUAL(r->exit_status, 137);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r->exited_at);
	CU_ASSERT_EQUAL(r->exited_at->seconds, 1700000000);
	CU_ASSERT_EQUAL(r->exited_at->nanos, 123456789);
	containerd__task__v2__delete_response__free_unpacked(r, NULL);
	free(buf);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"bundle group", test_group},
	    {"bundle config.json a FIFO", test_group_fifo},
	    {"runtime options", test_options},
	    {"address file", test_address_file},
	    {"protobuf DeleteResponse", test_delete_response},
	    {NULL, NULL},
	};
	char path[300];
	int r;

	if (mkdtemp(tmpdir) == NULL)
		unit_skip("mkdtemp failed");
	r = unit_main("containerd", cases);
	snprintf(path, sizeof path, "%s/config.json", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return r;
}
