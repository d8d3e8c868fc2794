/*
 * config.c: the daemon's configuration (docs/CONTRACT.md 3).
 *
 * One table lists every key with its dotted name, type and place in struct shim_config, so
 * the JSON file and the io.vmshim.* annotations of the bundle go through the same checks:
 * unknown keys and wrong types are errors naming the key. Runs on the main thread before any
 * other thread exists; struct shim_config owns its strings and arrays (config_free).
 *
 * A bundle's annotations are written by whoever writes the pod spec, who is not trusted with
 * the node: only the keys of config_bundle_keys (VM sizing, confidential, the group) and those
 * an administrator lists in allowed_annotations may come from a bundle; any other io.vmshim.*
 * annotation is INVALID_ARGUMENT naming the key. io.vmshim.group is not a configuration key:
 * it only chooses the shim (bundle.c).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "util.h"

enum config_type {
	CFG_STRING,
	CFG_U32,
	CFG_BOOL,
	CFG_STRLIST,
	CFG_UIDLIST,
	CFG_LOGLEVEL,
	CFG_LAUNCH,
};

struct config_key {
	const char *name; /* dotted, as in annotations */
	enum config_type type;
	size_t off;
	uint32_t min, max; /* CFG_U32 bounds */
};

#define OFF(f) offsetof(struct shim_config, f)

/*
 * A list key's field (CFG_STRLIST, CFG_UIDLIST) is the array's pointer, and its length is the
 * size_t right after it in struct shim_config: config_list_count() finds it there.
 */
#define CONFIG_LIST_PAIR(list, n) _Static_assert(OFF(n) == OFF(list) + sizeof(void *), #n)
CONFIG_LIST_PAIR(hotplug_ports, n_hotplug_ports);
CONFIG_LIST_PAIR(allowed_uids, n_allowed_uids);
CONFIG_LIST_PAIR(allowed_annotations, n_allowed_annotations);

static const struct config_key config_keys[] = {
    {"vm.vsock", CFG_STRING, OFF(vm_vsock), 0, 0},
    {"vm.agent_port", CFG_U32, OFF(agent_port), 0, UINT32_MAX},
    {"vm.stream_port", CFG_U32, OFF(stream_port), 0, UINT32_MAX},
    {"vm.qmp", CFG_STRING, OFF(vm_qmp), 0, 0},
    {"vm.hotplug_ports", CFG_STRLIST, OFF(hotplug_ports), 0, 0},
    {"vm.unplug_timeout_ms", CFG_U32, OFF(unplug_timeout_ms), 1, 3600000},
    {"vm.confidential", CFG_BOOL, OFF(confidential), 0, 0},
    {"vm.connect_timeout_ms", CFG_U32, OFF(connect_timeout_ms), 1, 3600000},
    {"vm.launch", CFG_LAUNCH, OFF(vm_launch), 0, 0},
    {"vm.agent", CFG_STRING, OFF(vm_agent), 0, 0},
    {"vm.cpus", CFG_U32, OFF(vm_cpus), 1, 256},
    {"vm.memory_mib", CFG_U32, OFF(vm_memory_mib), 64, 1048576},
    {"vm.boot_timeout_ms", CFG_U32, OFF(boot_timeout_ms), 1, 3600000},
    {"vm.qemu", CFG_STRING, OFF(vm_qemu), 0, 0},
    {"vm.kernel", CFG_STRING, OFF(vm_kernel), 0, 0},
    {"vm.initrd", CFG_STRING, OFF(vm_initrd), 0, 0},
    {"vm.accel", CFG_STRING, OFF(vm_accel), 0, 0},
    {"workers", CFG_U32, OFF(workers), 1, 256},
    {"max_connections", CFG_U32, OFF(max_connections), 1, 1000000},
    {"max_message_bytes", CFG_U32, OFF(max_message_bytes), 1024, 1u << 30},
    {"handshake_timeout_ms", CFG_U32, OFF(handshake_timeout_ms), 1, 3600000},
    {"request_timeout_ms", CFG_U32, OFF(request_timeout_ms), 1, 86400000},
    {"allowed_uids", CFG_UIDLIST, OFF(allowed_uids), 0, 0},
    {"seccomp", CFG_BOOL, OFF(seccomp), 0, 0},
    {"log_level", CFG_LOGLEVEL, OFF(log_level), 0, 0},
    {"allowed_annotations", CFG_STRLIST, OFF(allowed_annotations), 0, 0},
};

/* The io.vmshim.* keys a bundle may always set (allowed_annotations adds to them). */
static const char *const config_bundle_keys[] = {
    "vm.cpus", "vm.memory_mib", "vm.confidential", "group"};

static void
config_free_strlist(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* The defaults (docs/CONTRACT.md 3). */
void
config_defaults(struct shim_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->vm_vsock = xstrdup("");
	cfg->agent_port = PROTOCOL_AGENT_PORT;
	cfg->stream_port = PROTOCOL_STREAM_PORT;
	cfg->vm_qmp = xstrdup("");
	cfg->unplug_timeout_ms = 10000;
	cfg->confidential = false;
	cfg->connect_timeout_ms = 5000;
	cfg->workers = 4;
	cfg->max_connections = 1024;
	cfg->max_message_bytes = 4194304;
	cfg->handshake_timeout_ms = 2000;
	cfg->request_timeout_ms = 30000;
	cfg->allowed_uids = xmalloc(sizeof(uid_t));
	cfg->allowed_uids[0] = 0;
	cfg->n_allowed_uids = 1;
	cfg->seccomp = true;
	cfg->log_level = LOG_INFO;
	cfg->vm_launch = VM_LAUNCH_DEFAULT;
	cfg->vm_agent = xstrdup("");
	cfg->vm_cpus = 1;
	cfg->vm_memory_mib = 256;
	cfg->boot_timeout_ms = 30000;
	cfg->vm_qemu = xstrdup("qemu-system-x86_64");
	cfg->vm_kernel = xstrdup("");
	cfg->vm_initrd = xstrdup("");
	cfg->vm_accel = xstrdup("auto");
}

void
config_free(struct shim_config *cfg)
{
	free(cfg->vm_vsock);
	free(cfg->vm_qmp);
	config_free_strlist(cfg->hotplug_ports, cfg->n_hotplug_ports);
	free(cfg->allowed_uids);
	free(cfg->vm_agent);
	free(cfg->vm_qemu);
	free(cfg->vm_kernel);
	free(cfg->vm_initrd);
	free(cfg->vm_accel);
	free(cfg->vm_cgroup);
	config_free_strlist(cfg->allowed_annotations, cfg->n_allowed_annotations);
	memset(cfg, 0, sizeof *cfg);
}

static const struct config_key *
config_key_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/* The length of the list whose pointer is at field. */
static size_t *
config_list_count(char *field)
{
	return (size_t *)(field + sizeof(void *));
}

/*
 * Store one JSON value into the key's field. `src` names the source for messages ("config
 * FILE" or "annotation io.vmshim.KEY"), and errors read "SRC: KEY: problem".
 */
static int
config_set_json(struct shim_config *cfg, const struct config_key *k, json_t *v, const char *src,
    struct status *st)
{
	char *field = (char *)cfg + k->off;
	size_t i, n;
	json_t *e;

	switch (k->type) {
	case CFG_STRING:
		if (!json_is_string(v))
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s: %s: expected a string", src, k->name);
		free(*(char **)field);
		*(char **)field = xstrdup(json_string_value(v));
		return 0;
	case CFG_U32: {
		json_int_t x;

		if (!json_is_integer(v))
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s: %s: expected an integer", src, k->name);
		x = json_integer_value(v);
		if (x < (json_int_t)k->min || x > (json_int_t)k->max)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s: %s: %lld is out of range %u..%u", src, k->name, (long long)x,
			    k->min, k->max);
		*(uint32_t *)field = (uint32_t)x;
		return 0;
	}
	case CFG_BOOL:
		if (!json_is_boolean(v))
			return status_set(st, ST_INVALID_ARGUMENT, "%s: %s: expected true or false",
			    src, k->name);
		*(bool *)field = json_is_true(v);
		return 0;
	case CFG_LAUNCH: {
		const char *l = json_string_value(v);

		if (l == NULL)
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s: %s: expected a string", src, k->name);
		if (strcmp(l, "none") == 0)
			*(enum vm_launch *)field = VM_LAUNCH_NONE;
		else if (strcmp(l, "local") == 0)
			*(enum vm_launch *)field = VM_LAUNCH_LOCAL;
		else if (strcmp(l, "qemu") == 0)
			*(enum vm_launch *)field = VM_LAUNCH_QEMU;
		else
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s: %s: \"%s\" is not one of none, local, qemu", src, k->name, l);
		return 0;
	}
	case CFG_LOGLEVEL: {
		enum log_level lv;

		if (!json_is_string(v))
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s: %s: expected a string", src, k->name);
		if (log_level_parse(json_string_value(v), &lv) < 0)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s: %s: \"%s\" is not one of error, warn, info, debug", src, k->name,
			    json_string_value(v));
		*(enum log_level *)field = lv;
		return 0;
	}
	case CFG_STRLIST: {
		char **list;

		if (!json_is_array(v))
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s: %s: expected an array of strings", src, k->name);
		n = json_array_size(v);
		if (n > 256)
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s: %s: more than 256 entries", src, k->name);
		json_array_foreach (v, i, e)
			if (!json_is_string(e))
				return status_set(st, ST_INVALID_ARGUMENT,
				    "%s: %s[%zu]: expected a string", src, k->name, i);
		list = xcalloc(n ? n : 1, sizeof *list);
		json_array_foreach (v, i, e)
			list[i] = xstrdup(json_string_value(e));
		config_free_strlist(*(char ***)field, *config_list_count(field));
		*(char ***)field = list;
		*config_list_count(field) = n;
		return 0;
	}
	case CFG_UIDLIST: {
		uid_t *uids;

		if (!json_is_array(v))
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s: %s: expected an array of uids", src, k->name);
		n = json_array_size(v);
		if (n > 4096)
			return status_set(st, ST_INVALID_ARGUMENT, "%s: %s: more than 4096 entries",
			    src, k->name);
		json_array_foreach (v, i, e)
			if (!json_is_integer(e) || json_integer_value(e) < 0 ||
			    json_integer_value(e) >= (json_int_t)UINT32_MAX)
				return status_set(st, ST_INVALID_ARGUMENT,
				    "%s: %s[%zu]: expected a uid (0..4294967294)", src, k->name, i);
		uids = xcalloc(n ? n : 1, sizeof *uids);
		json_array_foreach (v, i, e)
			uids[i] = (uid_t)json_integer_value(e);
		free(*(uid_t **)field);
		*(uid_t **)field = uids;
		*config_list_count(field) = n;
		return 0;
	}
	}
	fatalx("config key %s: bad type %d", k->name, k->type);
}

/* Walk one JSON object level; `prefix` is "" at the top and "vm." inside "vm". */
static int
config_walk(
    struct shim_config *cfg, json_t *obj, const char *prefix, const char *src, struct status *st)
{
	const char *key;
	json_t *v;

	json_object_foreach (obj, key, v) {
		cleanup_free char *name = NULL;
		const struct config_key *k;

		xasprintf(&name, "%s%s", prefix, key);
		if (*prefix == '\0' && strcmp(key, "vm") == 0) {
			if (!json_is_object(v))
				return status_set(
				    st, ST_INVALID_ARGUMENT, "%s: vm: expected an object", src);
			if (config_walk(cfg, v, "vm.", src, st) < 0)
				return -1;
			continue;
		}
		k = config_key_find(name);
		if (k == NULL)
			return status_set(
			    st, ST_INVALID_ARGUMENT, "%s: %s: unknown key", src, name);
		if (config_set_json(cfg, k, v, src, st) < 0)
			return -1;
	}
	return 0;
}

/* Apply a parsed document (NULL when parsing failed, with jerr) named src in messages. */
static int
config_from_json(struct shim_config *cfg, json_t *root, const json_error_t *jerr, const char *src,
    struct status *st)
{
	if (root == NULL)
		return status_set(
		    st, ST_INVALID_ARGUMENT, "%s: line %d: %s", src, jerr->line, jerr->text);
	if (!json_is_object(root))
		return status_set(
		    st, ST_INVALID_ARGUMENT, "%s: line 1: expected a JSON object", src);
	return config_walk(cfg, root, "", src, st);
}

int
config_parse(
    struct shim_config *cfg, const char *buf, size_t len, const char *src, struct status *st)
{
	cleanup_json json_t *root = NULL;
	json_error_t jerr;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	return config_from_json(cfg, root, &jerr, src, st);
}

int
config_load(struct shim_config *cfg, const char *path, bool must_exist, struct status *st)
{
	cleanup_json json_t *root = NULL;
	cleanup_free char *src = NULL;
	json_error_t jerr;
	FILE *f;

	xasprintf(&src, "config %s", path);
	f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return status_errno(st, ST_FAILED_PRECONDITION, errno, "%s", src);
	}
	root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	fclose(f);
	return config_from_json(cfg, root, &jerr, src, st);
}

/* Convert an annotation's string into the JSON value its key expects. */
static json_t *
config_annotation_value(const struct config_key *k, const char *s)
{
	uint32_t u;

	switch (k->type) {
	case CFG_STRING:
	case CFG_LOGLEVEL:
	case CFG_LAUNCH:
		return json_string(s);
	case CFG_U32:
		if (parse_u32(s, &u) < 0)
			return NULL;
		return json_integer(u);
	case CFG_BOOL:
		if (strcmp(s, "true") == 0)
			return json_true();
		if (strcmp(s, "false") == 0)
			return json_false();
		return NULL;
	case CFG_STRLIST:
	case CFG_UIDLIST: {
		/* A JSON array, or a comma-separated list. */
		json_t *arr;
		cleanup_free char *copy = NULL;
		char *tok, *save = NULL;

		if (s[0] == '[')
			return json_loads(s, 0, NULL);
		arr = json_array();
		copy = xstrdup(s);
		for (tok = strtok_r(copy, ",", &save); tok != NULL;
		     tok = strtok_r(NULL, ",", &save)) {
			if (k->type == CFG_STRLIST) {
				json_array_append_new(arr, json_string(tok));
			} else {
				if (parse_u32(tok, &u) < 0) {
					json_decref(arr);
					return NULL;
				}
				json_array_append_new(arr, json_integer(u));
			}
		}
		return arr;
	}
	}
	return NULL;
}

/* May a bundle set io.vmshim.<key>? */
static bool
config_annotation_allowed(const struct shim_config *cfg, const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_bundle_keys); i++)
		if (strcmp(config_bundle_keys[i], key) == 0)
			return true;
	for (size_t i = 0; i < cfg->n_allowed_annotations; i++)
		if (strcmp(cfg->allowed_annotations[i], key) == 0)
			return true;
	return false;
}

int
config_apply_annotations(struct shim_config *cfg, json_t *annotations, struct status *st)
{
	static const char prefix[] = "io.vmshim.";
	const char *key;
	json_t *v;

	if (annotations == NULL)
		return 0;
	if (!json_is_object(annotations))
		return status_set(st, ST_INVALID_ARGUMENT, "annotations: expected an object");
	json_object_foreach (annotations, key, v) {
		cleanup_free char *src = NULL;
		cleanup_json json_t *jv = NULL;
		const struct config_key *k;
		const char *name = key + sizeof prefix - 1;

		if (strncmp(key, prefix, sizeof prefix - 1) != 0)
			continue;
		xasprintf(&src, "annotation %s", key);
		if (!config_annotation_allowed(cfg, name))
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s: may not be set from a bundle (allowed: io.vmshim.vm.cpus, "
			    "io.vmshim.vm.memory_mib, io.vmshim.vm.confidential, io.vmshim.group, "
			    "and the configuration's allowed_annotations)",
			    src);
		if (!json_is_string(v))
			return status_set(st, ST_INVALID_ARGUMENT, "%s: expected a string", src);
		if (strcmp(name, "group") == 0) {
			if (json_string_length(v) == 0)
				return status_set(
				    st, ST_INVALID_ARGUMENT, "%s: must not be empty", src);
			continue;
		}
		k = config_key_find(name);
		if (k == NULL || strcmp(name, "allowed_annotations") == 0)
			return status_set(st, ST_INVALID_ARGUMENT, "%s: unknown key", src);
		jv = config_annotation_value(k, json_string_value(v));
		if (jv == NULL)
			return status_set(st, ST_INVALID_ARGUMENT, "%s: \"%s\" is not a valid %s",
			    src, json_string_value(v),
			    k->type == CFG_U32	  ? "unsigned integer"
			    : k->type == CFG_BOOL ? "boolean (true or false)"
						  : "list");
		if (config_set_json(cfg, k, jv, src, st) < 0)
			return -1;
	}
	return 0;
}

int
config_check_annotations(const struct shim_config *cfg, json_t *annotations, struct status *st)
{
	struct shim_config scratch;
	int r;

	config_defaults(&scratch);
	scratch.allowed_annotations = cfg->allowed_annotations;
	scratch.n_allowed_annotations = cfg->n_allowed_annotations;
	r = config_apply_annotations(&scratch, annotations, st);
	scratch.allowed_annotations = NULL;
	scratch.n_allowed_annotations = 0;
	config_free(&scratch);
	return r;
}

#define CONFIG_BUNDLE_MAX (4u << 20) /* bytes of a bundle's config.json */

int
config_apply_bundle(struct shim_config *cfg, const char *bundle, struct status *st)
{
	cleanup_free char *path = NULL, *text = NULL;
	cleanup_json json_t *root = NULL;
	json_t *cg;
	json_error_t jerr;
	size_t len;
	int r;

	if (bundle == NULL || *bundle == '\0')
		return 0;
	xasprintf(&path, "%s/config.json", bundle);
	/* Opened so that it cannot block: a FIFO here is refused, not waited on. */
	r = util_read_regular_file(path, CONFIG_BUNDLE_MAX, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return status_set(
		    st, ST_INVALID_ARGUMENT, "bundle %s: %s", path, util_file_strerror(r, S_IFREG));
	root = json_loadb(text, len, 0, &jerr);
	if (root == NULL)
		return status_set(
		    st, ST_INVALID_ARGUMENT, "bundle %s: line %d: %s", path, jerr.line, jerr.text);
	if (!json_is_object(root))
		return 0;
	if (config_apply_annotations(cfg, json_object_get(root, "annotations"), st) < 0)
		return status_wrap(st, "bundle %s", path);
	cg = json_object_get(json_object_get(root, "linux"), "cgroupsPath");
	if (cg != NULL && !json_is_string(cg))
		return status_set(st, ST_INVALID_ARGUMENT,
		    "bundle %s: linux.cgroupsPath: expected a string", path);
	free(cfg->vm_cgroup);
	cfg->vm_cgroup = cg != NULL ? xstrdup(json_string_value(cg)) : NULL;
	return 0;
}

int
config_endpoints(struct shim_config *cfg, const char *src, struct status *st)
{
	cleanup_free char *a = NULL, *s = NULL;
	const char *v = cfg->vm_vsock;

	if (cfg->vm_launch == VM_LAUNCH_DEFAULT)
		cfg->vm_launch = *v != '\0' ? VM_LAUNCH_NONE : VM_LAUNCH_LOCAL;
	if (strcmp(cfg->vm_accel, "auto") != 0 && strcmp(cfg->vm_accel, "kvm") != 0 &&
	    strcmp(cfg->vm_accel, "tcg") != 0)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "%s: vm.accel: \"%s\" is not one of auto, kvm, tcg", src, cfg->vm_accel);
	/* A launched VM's socket is chosen when it is launched (vm_local_start, vm_qemu_start). */
	if ((cfg->vm_launch == VM_LAUNCH_LOCAL || cfg->vm_launch == VM_LAUNCH_QEMU) && *v == '\0')
		return 0;
	if (*v == '\0')
		return status_set(st, ST_INVALID_ARGUMENT,
		    "%s: vm.vsock: not set (\"uds:PATH\" or \"vsock:CID\")", src);
	if (strncmp(v, "uds:", 4) == 0) {
		if (v[4] == '\0')
			return status_set(st, ST_INVALID_ARGUMENT, "%s: vm.vsock: empty path", src);
		xasprintf(&a, "uds:%s:%u", v + 4, cfg->agent_port);
		xasprintf(&s, "uds:%s:%u", v + 4, cfg->stream_port);
	} else if (strncmp(v, "vsock:", 6) == 0) {
		uint32_t cid;

		if (parse_u32(v + 6, &cid) < 0)
			return status_set(st, ST_INVALID_ARGUMENT,
			    "%s: vm.vsock: \"%s\": CID is not a number", src, v);
		xasprintf(&a, "vsock:%u:%u", cid, cfg->agent_port);
		xasprintf(&s, "vsock:%u:%u", cid, cfg->stream_port);
	} else {
		return status_set(st, ST_INVALID_ARGUMENT,
		    "%s: vm.vsock: \"%s\": expected \"uds:PATH\" or \"vsock:CID\"", src, v);
	}
	if (endpoint_parse(a, &cfg->agent_ep, st) < 0 || endpoint_parse(s, &cfg->stream_ep, st) < 0)
		return status_wrap(st, "%s: vm.vsock", src);
	return 0;
}
