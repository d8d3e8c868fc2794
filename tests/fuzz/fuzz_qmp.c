/*
 * fuzz_qmp.c: libFuzzer target for the QMP message parser (shim/vm-qmp.c, qmp_msg_parse).
 *
 * The input is what QEMU writes on the QMP socket. It is cut into lines at '\n' as the QMP
 * reader thread does (empty lines skipped), and each line, then the whole input, is parsed.
 * A failure must be INTERNAL with a "QMP:" message and own nothing; a success must be
 * classified as the message's keys say (QMP, then return, then error, then event) with every
 * field the reader uses present and of the promised type. The reader's own use of a message
 * (copying the event name and data.device, taking a reference on the return value, matching
 * the error class) is repeated here so the fields are also read, not just checked.
 * Every parsed message is cleared before the next.
 */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "vm.h"

/* Parse one line and check the result against the JSON it came from. */
static void
qmp_check_line(const char *line, size_t len)
{
	char name[64], device[128];
	struct qmp_msg m;
	struct status st;
	json_t *dev, *ret, *id;

	status_clear(&st);
	if (qmp_msg_parse(line, len, &m, &st) < 0) {
		fuzz_check(st.code == ST_INTERNAL && strncmp(st.msg, "QMP:", 4) == 0,
		    "failure with code %d \"%s\"", st.code, st.msg);
		fuzz_check(m.root == NULL, "a failed parse kept its tree");
		return;
	}
	fuzz_check(json_is_object(m.root), "root is not an object");
	id = json_object_get(m.root, "id");
	switch (m.kind) {
	case QMP_MSG_GREETING:
		fuzz_check(json_object_get(m.root, "QMP") != NULL, "greeting without QMP");
		break;
	case QMP_MSG_RETURN:
		fuzz_check(json_object_get(m.root, "QMP") == NULL, "QMP must win over return");
		fuzz_check(m.ret != NULL && m.ret == json_object_get(m.root, "return"),
		    "return value missing");
		fuzz_check(m.id == (json_is_string(id) ? json_string_value(id) : NULL), "wrong id");
		ret = json_incref(m.ret);
		json_decref(ret);
		break;
	case QMP_MSG_ERROR:
		fuzz_check(json_object_get(m.root, "return") == NULL, "return must win over error");
		fuzz_check(m.err_class != NULL && m.err_desc != NULL, "error without class/desc");
		fuzz_check(m.id == (json_is_string(id) ? json_string_value(id) : NULL), "wrong id");
		(void)strcmp(m.err_class, "DeviceNotFound");
		snprintf(name, sizeof name, "%s", m.err_desc);
		break;
	case QMP_MSG_EVENT:
		fuzz_check(json_object_get(m.root, "error") == NULL, "error must win over event");
		fuzz_check(m.event != NULL, "event without a name");
		fuzz_check(m.data == NULL || json_is_object(m.data), "data is not an object");
		snprintf(name, sizeof name, "%s", m.event);
		dev = m.data ? json_object_get(m.data, "device") : NULL;
		snprintf(
		    device, sizeof device, "%s", json_is_string(dev) ? json_string_value(dev) : "");
		break;
	default:
		fuzz_check(0, "unknown kind %d", (int)m.kind);
	}
	qmp_msg_clear(&m);
	fuzz_check(m.root == NULL, "clear left the tree");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t start = 0, i;

	for (i = 0; i < size; i++) {
		if (buf[i] != '\n')
			continue;
		if (i > start)
			qmp_check_line(buf + start, i - start);
		start = i + 1;
	}
	qmp_check_line(buf, size);
	return 0;
}
