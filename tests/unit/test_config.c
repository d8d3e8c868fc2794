/*
 * test_config.c: the daemon's configuration (shim/config.c, docs/CONTRACT.md 3).
 *
 * The defaults; every key set from a file in a private mkdtemp directory; unknown keys at the
 * top level and inside "vm"; wrong types; values out of range; the vm.vsock forms (uds:PATH,
 * vsock:CID and bad ones) turned into endpoints; io.vmshim.* annotations overriding the file
 * with their string conversions, and errors naming the annotation; a bundle's config.json; a
 * JSON syntax error reported with its line number. Each error message is checked for the
 * source and the key it must name. A second list key of each type lands in its own field: the
 * program includes config.c itself to reach the key table's setter.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "unit.h"
#include "util.h"

#include "../../shim/config.c"

static char tmpdir[] = "/tmp/test_config.XXXXXX";

/* Write text to tmpdir/name and return the path (static buffer, one at a time). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	f = fopen(path, "we");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Load text as a config file over the defaults; returns config_load's result. */
static int
load_text(struct shim_config *cfg, const char *text, struct status *st)
{
	config_defaults(cfg);
	status_clear(st);
	return config_load(cfg, write_file("config.json", text), true, st);
}

/* Load text that must fail; the message must contain every NULL-terminated fragment. */
static void
expect_error(const char *text, const char *frag1, const char *frag2)
{
	struct shim_config cfg;
	struct status st;

	CU_ASSERT_EQUAL(load_text(&cfg, text, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	if (strstr(st.msg, frag1) == NULL || (frag2 != NULL && strstr(st.msg, frag2) == NULL)) {
		printf("\n  message \"%s\" lacks \"%s\" / \"%s\"\n", st.msg, frag1, frag2 ?: "");
		CU_FAIL("error message");
	}
	config_free(&cfg);
}

static void
test_defaults(void)
{
	struct shim_config cfg;
	struct status st;

	config_defaults(&cfg);
	CU_ASSERT_STRING_EQUAL(cfg.vm_vsock, "");
	CU_ASSERT_EQUAL(cfg.agent_port, 1024);
	CU_ASSERT_EQUAL(cfg.stream_port, 1025);
	CU_ASSERT_STRING_EQUAL(cfg.vm_qmp, "");
	CU_ASSERT_EQUAL(cfg.n_hotplug_ports, 0);
	CU_ASSERT_EQUAL(cfg.unplug_timeout_ms, 10000);
	CU_ASSERT_FALSE(cfg.confidential);
	CU_ASSERT_EQUAL(cfg.connect_timeout_ms, 5000);
	CU_ASSERT_EQUAL(cfg.workers, 4);
	CU_ASSERT_EQUAL(cfg.max_connections, 1024);
	CU_ASSERT_EQUAL(cfg.max_message_bytes, 4194304);
	CU_ASSERT_EQUAL(cfg.handshake_timeout_ms, 2000);
	CU_ASSERT_EQUAL(cfg.request_timeout_ms, 30000);
	CU_ASSERT_EQUAL_FATAL(cfg.n_allowed_uids, 1);
	CU_ASSERT_EQUAL(cfg.allowed_uids[0], 0);
	CU_ASSERT_TRUE(cfg.seccomp);
	CU_ASSERT_EQUAL(cfg.log_level, LOG_INFO);

	/* A missing default file means all defaults; a missing -config file is an error. */
	CU_ASSERT_EQUAL(config_load(&cfg, "/nonexistent/vmshim.json", false, &st), 0);
	CU_ASSERT_EQUAL(cfg.workers, 4);
	CU_ASSERT_EQUAL(config_load(&cfg, "/nonexistent/vmshim.json", true, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_FAILED_PRECONDITION);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "config /nonexistent/vmshim.json"));
	CU_ASSERT_EQUAL(cfg.vm_launch, VM_LAUNCH_DEFAULT);
	config_free(&cfg);
}

static void
test_every_key(void)
{
	static const char text[] =
	    "{\n"
	    "  \"vm\": {\n"
	    "    \"vsock\": \"uds:/run/vm/g1/vsock.sock\",\n"
	    "    \"agent_port\": 2024, \"stream_port\": 2025,\n"
	    "    \"qmp\": \"/run/vm/g1/qmp.sock\",\n"
	    "    \"hotplug_ports\": [\"rp0\", \"rp1\", \"rp2\"],\n"
	    "    \"unplug_timeout_ms\": 7000,\n"
	    "    \"confidential\": true,\n"
	    "    \"connect_timeout_ms\": 1500\n"
	    "  },\n"
	    "  \"workers\": 8, \"max_connections\": 10, \"max_message_bytes\": 65536,\n"
	    "  \"handshake_timeout_ms\": 250, \"request_timeout_ms\": 9000,\n"
	    "  \"allowed_uids\": [0, 1000, 65534], \"seccomp\": false, \"log_level\": \"debug\"\n"
	    "}\n";
	struct shim_config cfg;
	struct status st;

	CU_ASSERT_EQUAL_FATAL(load_text(&cfg, text, &st), 0);
	CU_ASSERT_STRING_EQUAL(cfg.vm_vsock, "uds:/run/vm/g1/vsock.sock");
	CU_ASSERT_EQUAL(cfg.agent_port, 2024);
	CU_ASSERT_EQUAL(cfg.stream_port, 2025);
	CU_ASSERT_STRING_EQUAL(cfg.vm_qmp, "/run/vm/g1/qmp.sock");
	CU_ASSERT_EQUAL_FATAL(cfg.n_hotplug_ports, 3);
	CU_ASSERT_STRING_EQUAL(cfg.hotplug_ports[0], "rp0");
	CU_ASSERT_STRING_EQUAL(cfg.hotplug_ports[2], "rp2");
	CU_ASSERT_EQUAL(cfg.unplug_timeout_ms, 7000);
	CU_ASSERT_TRUE(cfg.confidential);
	CU_ASSERT_EQUAL(cfg.connect_timeout_ms, 1500);
	CU_ASSERT_EQUAL(cfg.workers, 8);
	CU_ASSERT_EQUAL(cfg.max_connections, 10);
	CU_ASSERT_EQUAL(cfg.max_message_bytes, 65536);
	CU_ASSERT_EQUAL(cfg.handshake_timeout_ms, 250);
	CU_ASSERT_EQUAL(cfg.request_timeout_ms, 9000);
	CU_ASSERT_EQUAL_FATAL(cfg.n_allowed_uids, 3);
	CU_ASSERT_EQUAL(cfg.allowed_uids[0], 0);
	CU_ASSERT_EQUAL(cfg.allowed_uids[1], 1000);
	CU_ASSERT_EQUAL(cfg.allowed_uids[2], 65534);
	CU_ASSERT_FALSE(cfg.seccomp);
	CU_ASSERT_EQUAL(cfg.log_level, LOG_DEBUG);

	CU_ASSERT_EQUAL_FATAL(config_endpoints(&cfg, "config X", &st), 0);
	CU_ASSERT_EQUAL(cfg.agent_ep.kind, ENDPOINT_HYBRID);
	CU_ASSERT_STRING_EQUAL(cfg.agent_ep.path, "/run/vm/g1/vsock.sock");
	CU_ASSERT_EQUAL(cfg.agent_ep.port, 2024);
	CU_ASSERT_EQUAL(cfg.stream_ep.kind, ENDPOINT_HYBRID);
	CU_ASSERT_EQUAL(cfg.stream_ep.port, 2025);
	config_free(&cfg);

	/* A later file replaces lists instead of appending; empty lists are allowed. */
	CU_ASSERT_EQUAL_FATAL(
	    load_text(&cfg, "{\"allowed_uids\": [], \"vm\": {\"hotplug_ports\": []}}", &st), 0);
	CU_ASSERT_EQUAL(cfg.n_allowed_uids, 0);
	CU_ASSERT_EQUAL(cfg.n_hotplug_ports, 0);
	config_free(&cfg);
}

static void
test_unknown_keys(void)
{
	expect_error("{\"colour\": \"blue\"}", ": colour: unknown key", "config /tmp/");
	expect_error(
	    "{\"vm\": {\"vsock\": \"uds:/x\", \"colour\": 1}}", ": vm.colour: unknown key", NULL);
	/* Keys of "vm" are not valid at the top level, nor the reverse. */
	expect_error("{\"agent_port\": 1}", ": agent_port: unknown key", NULL);
	expect_error("{\"vm\": {\"workers\": 1}}", ": vm.workers: unknown key", NULL);
	expect_error("{\"vm\": {\"vm\": {}}}", ": vm.vm: unknown key", NULL);
}

static void
test_wrong_types(void)
{
	expect_error("{\"workers\": \"four\"}", ": workers: expected an integer", NULL);
	expect_error("{\"workers\": 2.5}", ": workers: expected an integer", NULL);
	expect_error("{\"seccomp\": 1}", ": seccomp: expected true or false", NULL);
	expect_error("{\"vm\": {\"vsock\": 5}}", ": vm.vsock: expected a string", NULL);
	expect_error("{\"vm\": []}", ": vm: expected an object", NULL);
	expect_error("{\"vm\": {\"hotplug_ports\": \"rp0\"}}",
	    ": vm.hotplug_ports: expected an array of strings", NULL);
	expect_error(
	    "{\"vm\": {\"hotplug_ports\": [\"rp0\", 1]}}", ": vm.hotplug_ports[1]: ", NULL);
	expect_error("{\"allowed_uids\": 0}", ": allowed_uids: expected an array", NULL);
	expect_error(
	    "{\"allowed_uids\": [0, \"root\"]}", ": allowed_uids[1]: expected a uid", NULL);
	expect_error("{\"log_level\": 3}", ": log_level: expected a string", NULL);
	expect_error("{\"log_level\": \"loud\"}", ": log_level: \"loud\" is not one of", NULL);
	expect_error("[1, 2]", "line 1: expected a JSON object", NULL);
}

static void
test_ranges(void)
{
	struct shim_config cfg;
	struct status st;

	expect_error("{\"workers\": 0}", ": workers: 0 is out of range 1..256", NULL);
	expect_error("{\"workers\": 257}", ": workers: 257 is out of range 1..256", NULL);
	expect_error("{\"max_connections\": 0}", ": max_connections: 0 is out of range", NULL);
	expect_error(
	    "{\"max_message_bytes\": 1023}", ": max_message_bytes: 1023 is out of range", NULL);
	expect_error(
	    "{\"handshake_timeout_ms\": -1}", ": handshake_timeout_ms: -1 is out of range", NULL);
	expect_error("{\"vm\": {\"agent_port\": 4294967296}}",
	    ": vm.agent_port: 4294967296 is out of range", NULL);
	expect_error("{\"allowed_uids\": [-1]}", ": allowed_uids[0]: expected a uid", NULL);
	expect_error("{\"allowed_uids\": [4294967295]}", ": allowed_uids[0]: expected a uid", NULL);

	/* The bounds themselves are accepted. */
	CU_ASSERT_EQUAL(load_text(&cfg,
			    "{\"workers\": 256, \"max_message_bytes\": 1024, "
			    "\"allowed_uids\": [4294967294], \"vm\": {\"agent_port\": 4294967295}}",
			    &st),
	    0);
	CU_ASSERT_EQUAL(cfg.workers, 256);
	CU_ASSERT_EQUAL(cfg.max_message_bytes, 1024);
	CU_ASSERT_EQUAL(cfg.allowed_uids[0], 4294967294u);
	CU_ASSERT_EQUAL(cfg.agent_port, 4294967295u);
	config_free(&cfg);
}

/* config_endpoints on one vm.vsock value. */
static int
endpoints_of(struct shim_config *cfg, const char *vsock, struct status *st)
{
	config_defaults(cfg);
	free(cfg->vm_vsock);
	cfg->vm_vsock = xstrdup(vsock);
	return config_endpoints(cfg, "config F", st);
}

static void
test_vsock_forms(void)
{
	struct shim_config cfg;
	struct status st;

	CU_ASSERT_EQUAL(endpoints_of(&cfg, "uds:/run/vm.sock", &st), 0);
	CU_ASSERT_EQUAL(cfg.agent_ep.kind, ENDPOINT_HYBRID);
	CU_ASSERT_STRING_EQUAL(cfg.agent_ep.path, "/run/vm.sock");
	CU_ASSERT_EQUAL(cfg.agent_ep.port, 1024);
	CU_ASSERT_EQUAL(cfg.stream_ep.port, 1025);
	config_free(&cfg);

	CU_ASSERT_EQUAL(endpoints_of(&cfg, "vsock:3", &st), 0);
	CU_ASSERT_EQUAL(cfg.agent_ep.kind, ENDPOINT_VSOCK);
	CU_ASSERT_EQUAL(cfg.agent_ep.cid, 3);
	CU_ASSERT_EQUAL(cfg.agent_ep.port, 1024);
	CU_ASSERT_EQUAL(cfg.stream_ep.kind, ENDPOINT_VSOCK);
	CU_ASSERT_EQUAL(cfg.stream_ep.port, 1025);
	config_free(&cfg);

	CU_ASSERT_EQUAL(endpoints_of(&cfg, "uds:", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "config F: vm.vsock: empty path"));
	config_free(&cfg);
	CU_ASSERT_EQUAL(endpoints_of(&cfg, "vsock:three", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "vm.vsock: \"vsock:three\": CID is not a number"));
	config_free(&cfg);
	CU_ASSERT_EQUAL(endpoints_of(&cfg, "vsock:", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "CID is not a number"));
	config_free(&cfg);
	CU_ASSERT_EQUAL(endpoints_of(&cfg, "tcp:1.2.3.4:80", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(st.msg, "vm.vsock: \"tcp:1.2.3.4:80\": expected \"uds:PATH\" or \"vsock:CID\""));
	config_free(&cfg);
	CU_ASSERT_EQUAL(endpoints_of(&cfg, "/run/vm.sock", &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	config_free(&cfg);
}

/* Apply annotations (JSON text of the object) over a loaded file. */
static int
annotate(struct shim_config *cfg, const char *json, struct status *st)
{
	json_t *ann = json_loads(json, 0, NULL);
	int r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ann);
	r = config_apply_annotations(cfg, ann, st);
	json_decref(ann);
	return r;
}

static void
test_annotations(void)
{
	struct shim_config cfg;
	struct status st;

	CU_ASSERT_EQUAL_FATAL(
	    load_text(&cfg,
		"{\"workers\": 2, \"seccomp\": true, \"vm\": {\"vsock\": \"uds:/a\"},"
		" \"allowed_annotations\": [\"workers\", \"seccomp\", \"vm.vsock\","
		" \"vm.hotplug_ports\", \"allowed_uids\", \"log_level\", \"colour\","
		" \"vm.colour\"]}",
		&st),
	    0);
	CU_ASSERT_EQUAL_FATAL(annotate(&cfg,
				  "{\"io.vmshim.workers\": \"6\", \"io.vmshim.seccomp\": \"false\","
				  " \"io.vmshim.vm.vsock\": \"vsock:7\","
				  " \"io.vmshim.vm.confidential\": \"true\","
				  " \"io.vmshim.vm.hotplug_ports\": \"rp0,rp1\","
				  " \"io.vmshim.allowed_uids\": \"[0, 42]\","
				  " \"io.vmshim.log_level\": \"warn\","
				  " \"org.example.other\": \"ignored\"}",
				  &st),
	    0);
	CU_ASSERT_EQUAL(cfg.workers, 6);
	CU_ASSERT_FALSE(cfg.seccomp);
	CU_ASSERT_TRUE(cfg.confidential);
	CU_ASSERT_STRING_EQUAL(cfg.vm_vsock, "vsock:7");
	CU_ASSERT_EQUAL_FATAL(cfg.n_hotplug_ports, 2);
	CU_ASSERT_STRING_EQUAL(cfg.hotplug_ports[1], "rp1");
	CU_ASSERT_EQUAL_FATAL(cfg.n_allowed_uids, 2);
	CU_ASSERT_EQUAL(cfg.allowed_uids[1], 42);
	CU_ASSERT_EQUAL(cfg.log_level, LOG_WARN);
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.allowed_uids\": \"7,8,9\"}", &st), 0);
	CU_ASSERT_EQUAL(cfg.n_allowed_uids, 3);
	CU_ASSERT_EQUAL(cfg.allowed_uids[2], 9);

	/* Errors name the annotation. */
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.workers\": \"many\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(
	    st.msg, "annotation io.vmshim.workers: \"many\" is not a valid unsigned integer"));
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.workers\": \"-3\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.workers: "));
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.workers\": \"0\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.workers: workers: 0 is out"));
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.seccomp\": \"yes\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg,
	    "annotation io.vmshim.seccomp: \"yes\" is not a valid boolean (true or false)"));
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.colour\": \"blue\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.colour: unknown key"));
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.vm.colour\": \"blue\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.vm.colour: unknown key"));
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.workers\": 4}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.workers: expected a string"));
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.allowed_uids\": \"0,root\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.allowed_uids: "));
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.log_level\": \"loud\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.log_level: log_level: "));
	/* The failed ones changed nothing. */
	CU_ASSERT_EQUAL(cfg.workers, 6);
	CU_ASSERT_FALSE(cfg.seccomp);
	CU_ASSERT_EQUAL(annotate(&cfg, "[]", &st), -1);
	CU_ASSERT_EQUAL(config_apply_annotations(&cfg, NULL, &st), 0);
	config_free(&cfg);
}

/*
 * Without allowed_annotations a bundle may set only vm.cpus, vm.memory_mib, vm.confidential
 * and group; anything else fails naming the key and changes nothing.
 */
static void
test_annotation_allowlist(void)
{
	static const char *const refused[] = {"seccomp", "allowed_uids", "workers", "vm.vsock",
	    "vm.launch", "vm.agent", "log_level", "allowed_annotations", "vm.qmp"};
	struct shim_config cfg;
	struct status st;
	char ann[200], key[100];
	json_t *j;

	config_defaults(&cfg);
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		snprintf(ann, sizeof ann, "{\"io.vmshim.%s\": \"false\"}", refused[i]);
		snprintf(key, sizeof key, "annotation io.vmshim.%s: may not be set from a bundle",
		    refused[i]);
		CU_ASSERT_EQUAL(annotate(&cfg, ann, &st), -1);
		CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, key));
	}
	CU_ASSERT_TRUE(cfg.seccomp);
	CU_ASSERT_EQUAL(
	    annotate(&cfg,
		"{\"io.vmshim.vm.cpus\": \"2\", \"io.vmshim.vm.memory_mib\": \"512\","
		" \"io.vmshim.vm.confidential\": \"true\", \"io.vmshim.group\": \"pod1\"}",
		&st),
	    0);
	CU_ASSERT_EQUAL(cfg.vm_cpus, 2);
	CU_ASSERT_EQUAL(cfg.vm_memory_mib, 512);
	CU_ASSERT_TRUE(cfg.confidential);
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.group\": \"\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.group: must not be empty"));
	config_free(&cfg);

	/* The administrator widens the list; checking applies nothing. */
	CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "{\"allowed_annotations\": [\"seccomp\"]}", &st), 0);
	j = json_loads("{\"io.vmshim.seccomp\": \"false\"}", 0, NULL);
	CU_ASSERT_EQUAL(config_check_annotations(&cfg, j, &st), 0);
	CU_ASSERT_TRUE(cfg.seccomp);
	json_decref(j);
	j = json_loads("{\"io.vmshim.workers\": \"3\"}", 0, NULL);
	CU_ASSERT_EQUAL(config_check_annotations(&cfg, j, &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "io.vmshim.workers: may not be set"));
	json_decref(j);
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.seccomp\": \"false\"}", &st), 0);
	CU_ASSERT_FALSE(cfg.seccomp);
	config_free(&cfg);
	CU_ASSERT_EQUAL(load_text(&cfg, "{\"allowed_annotations\": [1]}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "allowed_annotations[0]: expected a string"));
	config_free(&cfg);
}

static void
test_launch(void)
{
	struct shim_config cfg;
	struct status st;

	/* Absent: "local" without vm.vsock (no endpoint yet), "none" with it. */
	config_defaults(&cfg);
	CU_ASSERT_EQUAL(config_endpoints(&cfg, "config X", &st), 0);
	CU_ASSERT_EQUAL(cfg.vm_launch, VM_LAUNCH_LOCAL);
	config_free(&cfg);
	CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "{\"vm\": {\"vsock\": \"uds:/a\"}}", &st), 0);
	CU_ASSERT_EQUAL(config_endpoints(&cfg, "config X", &st), 0);
	CU_ASSERT_EQUAL(cfg.vm_launch, VM_LAUNCH_NONE);
	config_free(&cfg);
	/* "none" needs vm.vsock. */
	CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "{\"vm\": {\"launch\": \"none\"}}", &st), 0);
	CU_ASSERT_EQUAL(config_endpoints(&cfg, "config X", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "config X: vm.vsock: not set"));
	config_free(&cfg);
	CU_ASSERT_EQUAL_FATAL(
	    load_text(&cfg, "{\"vm\": {\"launch\": \"local\", \"agent\": \"/x/agent\"}}", &st), 0);
	CU_ASSERT_EQUAL(cfg.vm_launch, VM_LAUNCH_LOCAL);
	CU_ASSERT_STRING_EQUAL(cfg.vm_agent, "/x/agent");
	config_free(&cfg);
	CU_ASSERT_EQUAL(load_text(&cfg, "{\"vm\": {\"launch\": \"cloud\"}}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(st.msg, "vm.launch: \"cloud\" is not one of none, local, qemu"));
	config_free(&cfg);
	/* "qemu": its keys and defaults; no vm.vsock needed (the shim makes its own). */
	config_defaults(&cfg);
	CU_ASSERT_STRING_EQUAL(cfg.vm_qemu, "qemu-system-x86_64");
	CU_ASSERT_STRING_EQUAL(cfg.vm_kernel, "");
	CU_ASSERT_STRING_EQUAL(cfg.vm_initrd, "");
	CU_ASSERT_STRING_EQUAL(cfg.vm_accel, "auto");
	config_free(&cfg);
	CU_ASSERT_EQUAL_FATAL(load_text(&cfg,
				  "{\"vm\": {\"launch\": \"qemu\", \"qemu\": \"/q\", "
				  "\"kernel\": \"/k\", \"initrd\": \"/i\", \"accel\": \"tcg\"}}",
				  &st),
	    0);
	CU_ASSERT_EQUAL(config_endpoints(&cfg, "config X", &st), 0);
	CU_ASSERT_EQUAL(cfg.vm_launch, VM_LAUNCH_QEMU);
	CU_ASSERT_STRING_EQUAL(cfg.vm_qemu, "/q");
	CU_ASSERT_STRING_EQUAL(cfg.vm_kernel, "/k");
	CU_ASSERT_STRING_EQUAL(cfg.vm_initrd, "/i");
	CU_ASSERT_STRING_EQUAL(cfg.vm_accel, "tcg");
	config_free(&cfg);
	CU_ASSERT_EQUAL_FATAL(
	    load_text(&cfg, "{\"vm\": {\"launch\": \"qemu\", \"accel\": \"hvf\"}}", &st), 0);
	CU_ASSERT_EQUAL(config_endpoints(&cfg, "config X", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(st.msg, "config X: vm.accel: \"hvf\" is not one of auto, kvm, tcg"));
	config_free(&cfg);
	/* A bundle cannot choose the VMM or the guest image. */
	config_defaults(&cfg);
	CU_ASSERT_EQUAL(annotate(&cfg, "{\"io.vmshim.vm.kernel\": \"/evil\"}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "may not be set from a bundle"));
	config_free(&cfg);
}

static void
test_bundle(void)
{
	char bundle[300];
	struct shim_config cfg;
	struct status st;

	snprintf(bundle, sizeof bundle, "%s/bundle", tmpdir);
	CU_ASSERT_EQUAL_FATAL(mkdir_p(bundle, 0755), 0);
	config_defaults(&cfg);
	/* No config.json in the bundle, or no bundle: nothing to apply. */
	CU_ASSERT_EQUAL(config_apply_bundle(&cfg, bundle, &st), 0);
	CU_ASSERT_EQUAL(config_apply_bundle(&cfg, NULL, &st), 0);
	write_file("bundle/config.json", "{\"ociVersion\": \"1.0.2\", \"annotations\": "
					 "{\"io.vmshim.vm.cpus\": \"12\"}}");
	CU_ASSERT_EQUAL(config_apply_bundle(&cfg, bundle, &st), 0);
	CU_ASSERT_EQUAL(cfg.vm_cpus, 12);
	write_file("bundle/config.json", "{\"annotations\": {\"io.vmshim.workers\": \"x\"}}");
	CU_ASSERT_EQUAL(config_apply_bundle(&cfg, bundle, &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "bundle /tmp/"));
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "annotation io.vmshim.workers"));
	write_file("bundle/config.json", "{\n\"annotations\": {\n,\n}}");
	CU_ASSERT_EQUAL(config_apply_bundle(&cfg, bundle, &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "config.json: line 3: "));
	config_free(&cfg);
}

static void
test_syntax_error_line(void)
{
	struct shim_config cfg;
	struct status st;

	CU_ASSERT_EQUAL(
	    load_text(&cfg, "{\n  \"workers\": 2,\n  \"vm\": {\"vsock\": \"uds:/x\"\n}\n", &st),
	    -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "/config.json: line 5: "));
	config_free(&cfg);
	CU_ASSERT_EQUAL(load_text(&cfg, "{\n\n\n  \"workers\" 2\n}\n", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "/config.json: line 4: "));
	config_free(&cfg);
	/* Duplicate keys are refused, not silently merged. */
	CU_ASSERT_EQUAL(load_text(&cfg, "{\"workers\": 2,\n\"workers\": 3}", &st), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "line 2: "));
	config_free(&cfg);
}

/* Two list keys beyond the table's, one of each type, laid out as config.c requires. */
struct config_more {
	struct shim_config cfg;
	char **ports;
	size_t n_ports;
	uid_t *uids;
	size_t n_uids;
};

static void
test_second_list_key(void)
{
	static const struct config_key keys[] = {
	    {"more_ports", CFG_STRLIST, offsetof(struct config_more, ports), 0, 0},
	    {"more_uids", CFG_UIDLIST, offsetof(struct config_more, uids), 0, 0},
	};
	static const char doc[] = "{\"vm\": {\"hotplug_ports\": [\"rp0\"]}}";
	struct config_more m = {0};
	struct status st;
	json_t *ports = json_pack("[s, s]", "p1", "p2"), *uids = json_pack("[i, i, i]", 5, 6, 7);

	config_defaults(&m.cfg);
	CU_ASSERT_EQUAL(config_parse(&m.cfg, doc, strlen(doc), "test", &st), 0);
	CU_ASSERT_EQUAL(config_set_json(&m.cfg, &keys[0], ports, "test", &st), 0);
	CU_ASSERT_EQUAL(config_set_json(&m.cfg, &keys[1], uids, "test", &st), 0);
	CU_ASSERT_EQUAL_FATAL(m.n_ports, 2);
	CU_ASSERT_STRING_EQUAL(m.ports[0], "p1");
	CU_ASSERT_STRING_EQUAL(m.ports[1], "p2");
	CU_ASSERT_EQUAL_FATAL(m.n_uids, 3);
	CU_ASSERT(m.uids[0] == 5 && m.uids[2] == 7);
	/* The table's own lists are untouched. */
	CU_ASSERT_EQUAL_FATAL(m.cfg.n_hotplug_ports, 1);
	CU_ASSERT_STRING_EQUAL(m.cfg.hotplug_ports[0], "rp0");
	CU_ASSERT_EQUAL_FATAL(m.cfg.n_allowed_uids, 1);
	CU_ASSERT_EQUAL(m.cfg.allowed_uids[0], 0);
	config_free_strlist(m.ports, m.n_ports);
	free(m.uids);
	config_free(&m.cfg);
	json_decref(ports);
	json_decref(uids);
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"defaults", test_defaults},
	    {"every key", test_every_key},
	    {"unknown keys", test_unknown_keys},
	    {"wrong types", test_wrong_types},
	    {"out-of-range values", test_ranges},
	    {"vm.vsock forms", test_vsock_forms},
	    {"io.vmshim.* annotations", test_annotations},
	    {"bundle annotations", test_bundle},
	    {"annotation allow-list", test_annotation_allowlist},
	    {"vm.launch", test_launch},
	    {"syntax error line", test_syntax_error_line},
	    {"a second list key", test_second_list_key},
	    {NULL, NULL},
	};
	char cmd[300];
	int r;

	if (mkdtemp(tmpdir) == NULL)
		unit_skip("mkdtemp failed");
	r = unit_main("config", cases);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		r = 1;
	return r;
}
