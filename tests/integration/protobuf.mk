# tests/integration/: vmshim driven in protobuf, as stock containerd drives it. pb_client is
# the protobuf Task client and the fake containerd Events service; pb_interop.sh checks the
# encoding against Google's protobuf implementation (python3-grpc-tools).
PB_ITESTS = \
	tests/integration/shim_protobuf.sh \
	tests/integration/shim_forward.sh \
	tests/integration/pb_interop.sh
TESTS += $(PB_ITESTS)
TSAN_TESTS += tests/integration/shim_forward.sh
EXTRA_DIST += $(PB_ITESTS) tests/integration/protobuf.mk
check_PROGRAMS += tests/integration/pb_client
tests_integration_pb_client_SOURCES = tests/integration/pb_client.c
tests_integration_pb_client_CFLAGS = $(AM_CFLAGS) $(TESTLIB_CFLAGS)
tests_integration_pb_client_LDADD = $(TESTLIB_LIBS) $(COMMON_LIBS)
