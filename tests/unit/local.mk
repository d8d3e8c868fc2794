# tests/unit/: one CUnit program per module.
UNIT_LDADD = $(COMMON_LIBS) $(CUNIT_LIBS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS)

UNIT_TESTS = \
	tests/unit/test_util \
	tests/unit/test_frame \
	tests/unit/test_ptimer \
	tests/unit/test_msg \
	tests/unit/test_transport \
	tests/unit/test_conn \
	tests/unit/test_log \
	tests/unit/test_rpc
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
TSAN_TESTS += tests/unit/test_conn tests/unit/test_rpc tests/unit/test_log
EXTRA_DIST += tests/unit/unit.h

tests_unit_test_util_SOURCES = tests/unit/test_util.c
tests_unit_test_util_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_util_LDADD = $(UNIT_LDADD)
tests_unit_test_frame_SOURCES = tests/unit/test_frame.c
tests_unit_test_frame_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_frame_LDADD = $(UNIT_LDADD)
tests_unit_test_ptimer_SOURCES = tests/unit/test_ptimer.c
tests_unit_test_ptimer_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ptimer_LDADD = $(UNIT_LDADD)
tests_unit_test_msg_SOURCES = tests/unit/test_msg.c
tests_unit_test_msg_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_msg_LDADD = $(UNIT_LDADD)
tests_unit_test_transport_SOURCES = tests/unit/test_transport.c
tests_unit_test_transport_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_transport_LDADD = $(UNIT_LDADD)
tests_unit_test_conn_SOURCES = tests/unit/test_conn.c
tests_unit_test_conn_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_conn_LDADD = $(UNIT_LDADD)
tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_log_LDADD = $(UNIT_LDADD)
tests_unit_test_rpc_SOURCES = tests/unit/test_rpc.c
tests_unit_test_rpc_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_rpc_LDADD = $(UNIT_LDADD)
