/*
 * containerd.c: what `start` and `delete` exchange with containerd outside the Task API.
 *
 * containerd runs `start` in the bundle directory with optional runtime options on stdin (a
 * protobuf google.protobuf.Any; a runtimeoptions.v1.Options in it names the configuration
 * file), reads the address it prints, and finds the shim again after a restart through the
 * bundle's `address` file. `delete` answers a protobuf containerd.task.v2.DeleteResponse.
 * This file reads the bundle's group (io.vmshim.group, else io.kubernetes.cri.sandbox-id,
 * else the container id: one shim per group), decodes the options and encodes the
 * DeleteResponse through the protobuf codec (common/msg-pb.c), and writes the address file. Main
 * thread only, before any other thread exists; every buffer is owned by its caller.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msg-pb.h"
#include "shim.h"
#include "util.h"

#define CONTAINERD_OPTIONS_MAX (64 * 1024)
#define CONTAINERD_BUNDLE_MAX  (4u << 20) /* bytes of a bundle's config.json */

int
containerd_group(const char *bundle, const char *id, char **out, struct status *st)
{
	static const char *const keys[] = {"io.vmshim.group", "io.kubernetes.cri.sandbox-id"};
	cleanup_free char *path = NULL, *text = NULL;
	cleanup_json json_t *spec = NULL;
	json_t *ann = NULL, *v;
	json_error_t jerr;
	size_t len;
	int r;

	*out = NULL;
	if (bundle != NULL && *bundle != '\0') {
		xasprintf(&path, "%s/config.json", bundle);
		/* Never a blocking open: a FIFO here must not hold `start` for ever. */
		r = util_read_regular_file(path, CONTAINERD_BUNDLE_MAX, &text, &len);
		if (r < 0 && r != -ENOENT)
			return status_set(st, ST_INVALID_ARGUMENT, "bundle %.*s: %s", LOG_STR_MAX,
			    path, util_file_strerror(r, S_IFREG));
		if (r == 0 && (spec = json_loadb(text, len, 0, &jerr)) == NULL)
			return status_set(st, ST_INVALID_ARGUMENT, "bundle %.*s: line %d: %s",
			    LOG_STR_MAX, path, jerr.line, jerr.text);
		ann = spec != NULL ? json_object_get(spec, "annotations") : NULL;
	}
	/*
	 * A group names the shim's socket file: it follows the container id rule (protocol.h),
	 * which every container and sandbox id containerd creates fits.
	 */
	for (size_t i = 0; json_is_object(ann) && i < ARRAY_SIZE(keys); i++) {
		v = json_object_get(ann, keys[i]);
		if (v == NULL)
			continue;
		if (!json_is_string(v))
			return status_set(st, ST_INVALID_ARGUMENT,
			    "bundle %.*s: annotation %s: expected a string", LOG_STR_MAX, path,
			    keys[i]);
		if (protocol_check_id(keys[i], json_string_value(v), false, st) < 0)
			return status_wrap(st, "bundle %.*s: annotation", LOG_STR_MAX, path);
		*out = xstrdup(json_string_value(v));
		return 0;
	}
	if (id == NULL || *id == '\0')
		return status_set(st, ST_INVALID_ARGUMENT, "-id (or -socket) is required");
	if (protocol_check_id("-id", id, false, st) < 0)
		return -1;
	*out = xstrdup(id);
	return 0;
}

int
containerd_write_address(const char *bundle, const char *address, struct status *st)
{
	cleanup_free char *path = NULL, *tmp = NULL;
	cleanup_close int fd = -1;

	xasprintf(&path, "%s/address", bundle);
	xasprintf(&tmp, "%s/.address.%ld", bundle, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return status_errno(st, ST_INTERNAL, errno, "%s", tmp);
	if (write_all(fd, address, strlen(address)) < 0 || close(steal_fd(&fd)) < 0 ||
	    rename(tmp, path) < 0) {
		int err = errno;

		unlink(tmp);
		return status_errno(st, ST_INTERNAL, err, "%s", path);
	}
	return 0;
}

int
containerd_options_config_path(const uint8_t *buf, size_t len, char **out, struct status *st)
{
	*out = NULL;
	if (len > CONTAINERD_OPTIONS_MAX)
		return status_set(st, ST_INVALID_ARGUMENT,
		    "runtime options on stdin: %zu bytes, more than %d", len,
		    CONTAINERD_OPTIONS_MAX);
	if (msg_pb_runtime_options_decode(buf, len, out, st) < 0)
		return status_wrap(st, "runtime options on stdin");
	return 0;
}

size_t
containerd_delete_response(
    uint32_t pid, uint32_t exit_status, const struct timespec *at, uint8_t **out)
{
	char ts[TIME_RFC3339_LEN];
	cleanup_json json_t *tree = NULL;
	struct status st;
	size_t len = 0;

	time_rfc3339(at, ts);
	tree = json_pack(
	    "{s:i, s:i, s:s}", "pid", (int)pid, "exit_status", (int)exit_status, "exited_at", ts);
	if (msg_pb_message_encode(
		msg_pb_method(PROTOCOL_TASK_SERVICE, "Delete"), true, tree, out, &len, &st) < 0)
		fatalx("DeleteResponse: %s", st.msg);
	return len;
}
