# tests/fuzz/: libFuzzer targets (--enable-fuzzing) and their corpus regression runs.
#
# Each target tests/fuzz/fuzz_NAME.c (one per parser) is linked twice:
#   tests/fuzz/replay_NAME  every build, a check program in TESTS: standalone.c's main feeds it
#                           each file of tests/fuzz/corpus/NAME/, so seeds and crash
#                           reproducers are regression inputs of every make check;
#   tests/fuzz/fuzz_NAME    --enable-fuzzing builds only (CC=clang), linked with libFuzzer.
# make fuzz runs every fuzzer for FUZZ_SECONDS through run-fuzzers.sh (see docs/RELIABILITY.md).

FUZZ_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/shim
FUZZ_LDADD = $(COMMON_LIBS)
FUZZ_COMMON = tests/fuzz/fuzz.h tests/fuzz/fuzz.c
FUZZ_JSON = tests/fuzz/fuzz-fields.c

FUZZ_REPLAYS = tests/fuzz/replay_frame \
	tests/fuzz/replay_stream \
	tests/fuzz/replay_request \
	tests/fuzz/replay_response_event \
	tests/fuzz/replay_handshake \
	tests/fuzz/replay_qmp \
	tests/fuzz/replay_endpoint \
	tests/fuzz/replay_config \
	tests/fuzz/replay_vsock \
	tests/fuzz/replay_pb
check_PROGRAMS += $(FUZZ_REPLAYS)
TESTS += $(FUZZ_REPLAYS)
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/json.dict tests/fuzz/handshake.dict \
	tests/fuzz/endpoint.dict
dist_noinst_SCRIPTS += tests/fuzz/run-fuzzers.sh

tests_fuzz_replay_frame_SOURCES = tests/fuzz/fuzz_frame.c $(FUZZ_COMMON) \
	tests/fuzz/standalone.c
tests_fuzz_replay_frame_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=frame
tests_fuzz_replay_frame_LDADD = $(FUZZ_LDADD)
tests_fuzz_replay_stream_SOURCES = tests/fuzz/fuzz_stream.c $(FUZZ_COMMON) \
	tests/fuzz/standalone.c
tests_fuzz_replay_stream_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=stream
tests_fuzz_replay_stream_LDADD = $(FUZZ_LDADD)
tests_fuzz_replay_request_SOURCES = tests/fuzz/fuzz_request.c $(FUZZ_JSON) $(FUZZ_COMMON) \
	tests/fuzz/standalone.c
tests_fuzz_replay_request_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=request
tests_fuzz_replay_request_LDADD = $(FUZZ_LDADD)
tests_fuzz_replay_response_event_SOURCES = tests/fuzz/fuzz_response_event.c $(FUZZ_JSON) \
	$(FUZZ_COMMON) tests/fuzz/standalone.c
tests_fuzz_replay_response_event_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=response_event
tests_fuzz_replay_response_event_LDADD = $(FUZZ_LDADD)
tests_fuzz_replay_handshake_SOURCES = tests/fuzz/fuzz_handshake.c $(FUZZ_COMMON) \
	tests/fuzz/standalone.c
tests_fuzz_replay_handshake_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=handshake
tests_fuzz_replay_handshake_LDADD = $(FUZZ_LDADD)
tests_fuzz_replay_qmp_SOURCES = tests/fuzz/fuzz_qmp.c shim/vm-qmp.c shim/vm.h $(FUZZ_COMMON) \
	tests/fuzz/standalone.c
tests_fuzz_replay_qmp_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=qmp
tests_fuzz_replay_qmp_LDADD = $(FUZZ_LDADD)
tests_fuzz_replay_endpoint_SOURCES = tests/fuzz/fuzz_endpoint.c $(FUZZ_COMMON) \
	tests/fuzz/standalone.c
tests_fuzz_replay_endpoint_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=endpoint
tests_fuzz_replay_endpoint_LDADD = $(FUZZ_LDADD)
tests_fuzz_replay_config_SOURCES = tests/fuzz/fuzz_config.c shim/config.c shim/shim.h \
	$(FUZZ_COMMON) tests/fuzz/standalone.c
tests_fuzz_replay_config_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=config
tests_fuzz_replay_config_LDADD = $(FUZZ_LDADD)
# vmshim-vsock's guest-facing parsers and the connection logic they drive (contrib/vsock/).
FUZZ_VSOCK_SRC = tests/fuzz/fuzz_vsock.c contrib/vsock/vsock.h contrib/vsock/virtq.c \
	contrib/vsock/packet.c contrib/vsock/conn.c $(FUZZ_COMMON)
tests_fuzz_replay_vsock_SOURCES = $(FUZZ_VSOCK_SRC) tests/fuzz/standalone.c
tests_fuzz_replay_vsock_CFLAGS = $(FUZZ_CFLAGS) -I$(top_srcdir)/contrib/vsock -DFUZZ_NAME=vsock
tests_fuzz_replay_vsock_LDADD = $(FUZZ_LDADD)
tests_fuzz_replay_pb_SOURCES = tests/fuzz/fuzz_pb.c $(FUZZ_COMMON) tests/fuzz/standalone.c
tests_fuzz_replay_pb_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_NAME=pb
tests_fuzz_replay_pb_LDADD = $(FUZZ_LDADD)

if FUZZING
FUZZ_BINARIES = tests/fuzz/fuzz_frame \
	tests/fuzz/fuzz_stream \
	tests/fuzz/fuzz_request \
	tests/fuzz/fuzz_response_event \
	tests/fuzz/fuzz_handshake \
	tests/fuzz/fuzz_qmp \
	tests/fuzz/fuzz_endpoint \
	tests/fuzz/fuzz_config \
	tests/fuzz/fuzz_vsock \
	tests/fuzz/fuzz_pb
noinst_PROGRAMS += $(FUZZ_BINARIES)

tests_fuzz_fuzz_frame_SOURCES = tests/fuzz/fuzz_frame.c $(FUZZ_COMMON)
tests_fuzz_fuzz_frame_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_frame_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_frame_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_stream_SOURCES = tests/fuzz/fuzz_stream.c $(FUZZ_COMMON)
tests_fuzz_fuzz_stream_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_stream_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_stream_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_request_SOURCES = tests/fuzz/fuzz_request.c $(FUZZ_JSON) $(FUZZ_COMMON)
tests_fuzz_fuzz_request_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_request_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_request_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_response_event_SOURCES = tests/fuzz/fuzz_response_event.c $(FUZZ_JSON) $(FUZZ_COMMON)
tests_fuzz_fuzz_response_event_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_response_event_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_response_event_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_handshake_SOURCES = tests/fuzz/fuzz_handshake.c $(FUZZ_COMMON)
tests_fuzz_fuzz_handshake_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_handshake_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_handshake_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_qmp_SOURCES = tests/fuzz/fuzz_qmp.c shim/vm-qmp.c shim/vm.h $(FUZZ_COMMON)
tests_fuzz_fuzz_qmp_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_qmp_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_qmp_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_endpoint_SOURCES = tests/fuzz/fuzz_endpoint.c $(FUZZ_COMMON)
tests_fuzz_fuzz_endpoint_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_endpoint_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_endpoint_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c shim/config.c shim/shim.h $(FUZZ_COMMON)
tests_fuzz_fuzz_config_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_config_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_config_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_vsock_SOURCES = $(FUZZ_VSOCK_SRC)
tests_fuzz_fuzz_vsock_CFLAGS = $(FUZZ_CFLAGS) -I$(top_srcdir)/contrib/vsock
tests_fuzz_fuzz_vsock_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_vsock_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_pb_SOURCES = tests/fuzz/fuzz_pb.c $(FUZZ_COMMON)
tests_fuzz_fuzz_pb_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_pb_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_pb_LDADD = $(FUZZ_LDADD)

# make fuzz [FUZZ_SECONDS=60] [FUZZ_MERGE=1]: every target for FUZZ_SECONDS, new inputs into
# tests/fuzz/out/NAME/corpus here; FUZZ_MERGE=1 merges them into the committed corpus.
FUZZ_SECONDS = 60
fuzz: $(FUZZ_BINARIES)
	FUZZ_MERGE='$(FUZZ_MERGE)' $(SHELL) $(srcdir)/tests/fuzz/run-fuzzers.sh \
		'$(abs_top_builddir)' '$(FUZZ_SECONDS)'
else
fuzz:
	@echo "make fuzz: this build has no libFuzzer targets. Configure one with:"
	@echo "  mkdir build-fuzz && cd build-fuzz && CC=clang $(abs_top_srcdir)/configure --enable-fuzzing"
	@echo "then run make fuzz there (clang and libclang-rt-dev are needed)."
	@exit 1
endif
.PHONY: fuzz
