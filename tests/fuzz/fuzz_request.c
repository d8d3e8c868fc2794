/*
 * fuzz_request.c: libFuzzer target for the request envelope (common/msg.c) and the payload
 * decoding of every Task method (docs/CONTRACT.md 4).
 *
 * The input is the payload of one ttrpc request frame. msg_request_decode must either fail
 * with INVALID_ARGUMENT or give an envelope that keeps its promises (non-empty service and
 * method, an object payload, a timeout >= 0) and that re-encodes (msg_request_encode) to
 * bytes decoding to the same envelope. Then, since the handlers read their fields through
 * the typed accessors, the payload is walked with each Task method's field table below,
 * whatever method the request names: one input thus covers every method's field decoding.
 * The tables mirror docs/CONTRACT.md 4's payload column and the types the shim's handlers ask for;
 * the guest agent's methods (docs/PROTOCOL.md) get their own tables, walked the same way. The
 * decoded envelope is owned here and cleared before returning.
 */
#include "config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "msg.h"

/* Field tables: {key, type, required, nested table}; a NULL key ends one. */

/* Create's rootfs[] entries. */
static const struct fuzz_field mount_fields[] = {
    {"type", FF_STRING, true, NULL},
    {"source", FF_STRING, false, NULL},
    {"target", FF_STRING, false, NULL},
    {"options", FF_STRINGS, false, NULL},
    {NULL, 0, false, NULL},
};

/* The OCI process object's user. */
static const struct fuzz_field user_fields[] = {
    {"uid", FF_U32, false, NULL},
    {"gid", FF_U32, false, NULL},
    {"additionalGids", FF_U32S, false, NULL},
    {NULL, 0, false, NULL},
};

/* Exec's spec: an OCI process object. */
static const struct fuzz_field process_fields[] = {
    {"args", FF_STRINGS, true, NULL},
    {"env", FF_STRINGS, false, NULL},
    {"cwd", FF_STRING, false, NULL},
    {"user", FF_TABLE, false, user_fields},
    {"terminal", FF_BOOL, false, NULL},
    {NULL, 0, false, NULL},
};

/* Create. */
static const struct fuzz_field create_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"bundle", FF_STRING, true, NULL},
    {"rootfs", FF_TABLES, false, mount_fields},
    {"terminal", FF_BOOL, false, NULL},
    {"stdin", FF_STRING, false, NULL},
    {"stdout", FF_STRING, false, NULL},
    {"stderr", FF_STRING, false, NULL},
    {NULL, 0, false, NULL},
};

/* Start, State, Wait, Delete. */
static const struct fuzz_field id_exec_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"exec_id", FF_STRING, false, NULL},
    {NULL, 0, false, NULL},
};

/* Pids, Pause, Resume, Stats. */
static const struct fuzz_field id_fields[] = {
    {"id", FF_STRING, true, NULL},
    {NULL, 0, false, NULL},
};

/* Exec. */
static const struct fuzz_field exec_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"exec_id", FF_STRING, true, NULL},
    {"terminal", FF_BOOL, false, NULL},
    {"stdin", FF_STRING, false, NULL},
    {"stdout", FF_STRING, false, NULL},
    {"stderr", FF_STRING, false, NULL},
    {"spec", FF_TABLE, true, process_fields},
    {NULL, 0, false, NULL},
};

/* Kill. */
static const struct fuzz_field kill_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"exec_id", FF_STRING, false, NULL},
    {"signal", FF_U32, true, NULL},
    {"all", FF_BOOL, false, NULL},
    {NULL, 0, false, NULL},
};

/* CloseIO. */
static const struct fuzz_field close_io_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"exec_id", FF_STRING, false, NULL},
    {"stdin", FF_BOOL, false, NULL},
    {NULL, 0, false, NULL},
};

/* ResizePty. */
static const struct fuzz_field resize_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"exec_id", FF_STRING, false, NULL},
    {"width", FF_U32, true, NULL},
    {"height", FF_U32, true, NULL},
    {NULL, 0, false, NULL},
};

/* Update. */
static const struct fuzz_field update_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"resources", FF_OBJECT, false, NULL},
    {"annotations", FF_STRMAP, false, NULL},
    {NULL, 0, false, NULL},
};

/* Connect (the id is optional). */
static const struct fuzz_field connect_fields[] = {
    {"id", FF_STRING, false, NULL},
    {NULL, 0, false, NULL},
};

/* Shutdown. */
static const struct fuzz_field shutdown_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"now", FF_BOOL, false, NULL},
    {NULL, 0, false, NULL},
};

/* Every method of containerd.task.v2.Task (docs/CONTRACT.md 4), with the fields its payload
 * carries. */
static const struct {
	const char *method;
	const struct fuzz_field *fields;
} request_methods[] = {
    {"Create", create_fields},
    {"Start", id_exec_fields},
    {"Exec", exec_fields},
    {"State", id_exec_fields},
    {"Pids", id_fields},
    {"Kill", kill_fields},
    {"Wait", id_exec_fields},
    {"CloseIO", close_io_fields},
    {"ResizePty", resize_fields},
    {"Pause", id_fields},
    {"Resume", id_fields},
    {"Update", update_fields},
    {"Stats", id_fields},
    {"Delete", id_exec_fields},
    {"Connect", connect_fields},
    {"Shutdown", shutdown_fields},
};

/*
 * The guest agent's methods (service vmshim.agent.v1.Agent, docs/PROTOCOL.md section 2): the
 * same envelope and accessors carry them, so they are walked the same way. The types are the
 * ones contrib/agent/control.c and runner-process.c ask for.
 */
static const struct fuzz_field agent_create_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"bundle", FF_STRING, false, NULL},
    {"spec", FF_OBJECT, true, NULL},
    {"rootfs_mount", FF_STRING, false, NULL},
    {"terminal", FF_BOOL, false, NULL},
    {"stdin", FF_BOOL, false, NULL},
    {"stdout", FF_BOOL, false, NULL},
    {"stderr", FF_BOOL, false, NULL},
    {NULL, 0, false, NULL},
};
static const struct fuzz_field agent_exec_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"exec_id", FF_STRING, true, NULL},
    {"process", FF_TABLE, true, process_fields},
    {"terminal", FF_BOOL, false, NULL},
    {"stdin", FF_BOOL, false, NULL},
    {"stdout", FF_BOOL, false, NULL},
    {"stderr", FF_BOOL, false, NULL},
    {NULL, 0, false, NULL},
};
static const struct fuzz_field agent_update_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"resources", FF_OBJECT, true, NULL},
    {NULL, 0, false, NULL},
};
static const struct fuzz_field agent_mount_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"serial", FF_STRING, true, NULL},
    {"target", FF_STRING, true, NULL},
    {"fstype", FF_STRING, false, NULL},
    {"options", FF_STRINGS, false, NULL},
    {NULL, 0, false, NULL},
};
static const struct fuzz_field agent_unmount_fields[] = {
    {"id", FF_STRING, true, NULL},
    {"target", FF_STRING, true, NULL},
    {NULL, 0, false, NULL},
};

static const struct {
	const char *method;
	const struct fuzz_field *fields;
} agent_methods[] = {
    {"Ping", connect_fields},
    {"CreateContainer", agent_create_fields},
    {"StartProcess", id_exec_fields},
    {"ExecProcess", agent_exec_fields},
    {"SignalProcess", kill_fields},
    {"CloseStdin", id_exec_fields},
    {"ResizePty", resize_fields},
    {"PauseContainer", id_fields},
    {"ResumeContainer", id_fields},
    {"UpdateContainer", agent_update_fields},
    {"Stats", id_fields},
    {"Pids", id_fields},
    {"DeleteProcess", id_exec_fields},
    {"ProcessState", id_exec_fields},
    {"MountDisk", agent_mount_fields},
    {"UnmountDisk", agent_unmount_fields},
};

/* The decoded request must re-encode to bytes that decode to the same request. */
static void
request_check_roundtrip(const struct msg_request *r)
{
	struct msg_request again;
	struct status st;
	size_t len;
	char *enc;

	enc = msg_request_encode(r->service, r->method, r->payload, r->timeout_nano, &len);
	fuzz_check(
	    msg_request_decode(enc, len, &again, &st) == 0, "re-encoded request: %s", st.msg);
	fuzz_check(strcmp(again.service, r->service) == 0 && strcmp(again.method, r->method) == 0,
	    "service/method changed");
	fuzz_check(again.timeout_nano == r->timeout_nano, "timeout changed");
	fuzz_check(json_equal(again.payload, r->payload), "payload changed");
	fuzz_check(again.metadata != NULL && json_object_size(again.metadata) == 0,
	    "encoded metadata is not {}");
	msg_request_clear(&again);
	free(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_request r;
	struct status st;
	size_t i;

	status_clear(&st);
	if (msg_request_decode(data, size, &r, &st) < 0) {
		fuzz_check(st.code == ST_INVALID_ARGUMENT && st.msg[0] != '\0',
		    "decode failed with code %d \"%s\"", st.code, st.msg);
		fuzz_check(r.root == NULL, "a failed decode kept its tree");
		return 0;
	}
	fuzz_check(r.root != NULL && r.service != NULL && r.method != NULL, "envelope incomplete");
	fuzz_check(r.service[0] != '\0' && r.method[0] != '\0', "empty service or method");
	fuzz_check(json_is_object(r.payload), "payload is not an object");
	fuzz_check(r.timeout_nano >= 0, "negative timeout");
	fuzz_check(r.metadata == NULL || json_is_object(r.metadata), "metadata not an object");
	request_check_roundtrip(&r);
	for (i = 0; i < ARRAY_SIZE(request_methods); i++)
		fuzz_fields_walk(r.payload, "payload", request_methods[i].fields);
	for (i = 0; i < ARRAY_SIZE(agent_methods); i++)
		fuzz_fields_walk(r.payload, "payload", agent_methods[i].fields);
	msg_request_clear(&r);
	fuzz_check(r.root == NULL, "clear left the tree");
	return 0;
}
