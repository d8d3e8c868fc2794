# common/proto/: the protobuf messages vmshim speaks with stock containerd (ttrpc envelopes,
# the shim Task API, task events, Events/Forward, cgroups Metrics, runtime options). protoc-c
# turns them into C at build time, in the build directory (never in the source tree, so out
# of tree builds and distcheck work); common/libproto.a holds the result for every program.
PROTO_FILES = \
	common/proto/wkt.proto \
	common/proto/rpc_status.proto \
	common/proto/ttrpc.proto \
	common/proto/mount.proto \
	common/proto/task_types.proto \
	common/proto/shim.proto \
	common/proto/events.proto \
	common/proto/forward.proto \
	common/proto/metrics.proto \
	common/proto/runtimeoptions.proto
PROTO_GEN_C = \
	common/proto/wkt.pb-c.c \
	common/proto/rpc_status.pb-c.c \
	common/proto/ttrpc.pb-c.c \
	common/proto/mount.pb-c.c \
	common/proto/task_types.pb-c.c \
	common/proto/shim.pb-c.c \
	common/proto/events.pb-c.c \
	common/proto/forward.pb-c.c \
	common/proto/metrics.pb-c.c \
	common/proto/runtimeoptions.pb-c.c
PROTO_GEN_H = \
	common/proto/wkt.pb-c.h \
	common/proto/rpc_status.pb-c.h \
	common/proto/ttrpc.pb-c.h \
	common/proto/mount.pb-c.h \
	common/proto/task_types.pb-c.h \
	common/proto/shim.pb-c.h \
	common/proto/events.pb-c.h \
	common/proto/forward.pb-c.h \
	common/proto/metrics.pb-c.h \
	common/proto/runtimeoptions.pb-c.h

noinst_LIBRARIES += common/libproto.a
nodist_common_libproto_a_SOURCES = $(PROTO_GEN_C) $(PROTO_GEN_H)
# Generated code (protoc-c's style, not ours) builds with the project's warnings as it is.
common_libproto_a_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
PROTO_LIBS = common/libproto.a $(PROTOBUF_C_LIBS)

# One protoc-c run writes every .pb-c.c/.pb-c.h pair; the stamp stands for all of them.
common/proto/proto.stamp: $(PROTO_FILES)
	$(AM_V_GEN)$(MKDIR_P) common/proto && \
		$(PROTOC_C) -I$(srcdir)/common/proto --c_out=common/proto \
		$(srcdir)/common/proto/wkt.proto \
		$(srcdir)/common/proto/rpc_status.proto \
		$(srcdir)/common/proto/ttrpc.proto \
		$(srcdir)/common/proto/mount.proto \
		$(srcdir)/common/proto/task_types.proto \
		$(srcdir)/common/proto/shim.proto \
		$(srcdir)/common/proto/events.proto \
		$(srcdir)/common/proto/forward.proto \
		$(srcdir)/common/proto/metrics.proto \
		$(srcdir)/common/proto/runtimeoptions.proto && \
		touch $@
$(PROTO_GEN_C) $(PROTO_GEN_H): common/proto/proto.stamp

BUILT_SOURCES += common/proto/proto.stamp
CLEANFILES += common/proto/proto.stamp $(PROTO_GEN_C) $(PROTO_GEN_H)
EXTRA_DIST += $(PROTO_FILES) common/proto/local.mk
