/*
 * test_protocol.c: the wire rules both the shim and the agent apply (common/protocol.c).
 *
 * The id rule at its edges: the longest id accepted and one byte more, every allowed
 * character class, the characters and first bytes refused, and the empty id with and
 * without allow_empty. Both daemons call this one function, so an id the shim accepts is
 * never refused later by the agent (the bug this replaced: the shim took 255 bytes, the agent
 * 128). Also the stdio kind names a stream's hello carries.
 */
#include "config.h"

#include <string.h>

#include "protocol.h"
#include "status.h"
#include "unit.h"

static int
check(const char *id, bool allow_empty, struct status *st)
{
	st->code = ST_OK;
	st->msg[0] = '\0';
	return protocol_check_id("id", id, allow_empty, st);
}

static void
test_id_length(void)
{
	char id[PROTOCOL_ID_MAX + 2];
	struct status st;

	memset(id, 'a', sizeof id);
	id[PROTOCOL_ID_MAX] = '\0';
	CU_ASSERT_EQUAL(check(id, false, &st), 0);
	id[PROTOCOL_ID_MAX] = 'a';
	id[PROTOCOL_ID_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(check(id, false, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "payload.id: longer than 128 bytes"));
}

static void
test_id_chars(void)
{
	static const char *const good[] = {"a", "Z9", "0abc", "c_1.x-y", "_x", "a..b", "x-", "x."};
	static const char *const bad[] = {"a b", "a/b", "a\\b", "a:b", "é", "a\nb", "a*"};
	struct status st;

	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		CU_ASSERT_EQUAL(check(good[i], false, &st), 0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		CU_ASSERT_EQUAL(check(bad[i], false, &st), -1);
		CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "invalid character"));
	}
}

static void
test_id_first_byte(void)
{
	static const char *const bad[] = {".", "..", ".hidden", "-rf", "-"};
	struct status st;

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		CU_ASSERT_EQUAL(check(bad[i], false, &st), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "must not start with"));
	}
}

static void
test_id_empty(void)
{
	struct status st;

	CU_ASSERT_EQUAL(check("", true, &st), 0);
	CU_ASSERT_EQUAL(check("", false, &st), -1);
	CU_ASSERT_EQUAL(st.code, ST_INVALID_ARGUMENT);
	CU_ASSERT_STRING_EQUAL(st.msg, "payload.id: must not be empty");
}

static void
test_stdio_names(void)
{
	CU_ASSERT_STRING_EQUAL(stdio_kind_name(STDIO_IN), "stdin");
	CU_ASSERT_STRING_EQUAL(stdio_kind_name(STDIO_OUT), "stdout");
	CU_ASSERT_STRING_EQUAL(stdio_kind_name(STDIO_ERR), "stderr");
	CU_ASSERT_STRING_EQUAL(stdio_kind_name(STDIO_N), "?");
}

int
main(void)
{
	static const struct unit_case cases[] = {
	    {"id length edge", test_id_length},
	    {"id characters", test_id_chars},
	    {"id first byte", test_id_first_byte},
	    {"empty id", test_id_empty},
	    {"stdio kind names", test_stdio_names},
	    {NULL, NULL},
	};

	return unit_main("protocol", cases);
}
