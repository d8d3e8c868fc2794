# common/: the internal library shared by vmshim, vmshim-agent and the tests.
noinst_LIBRARIES += common/libcommon.a
common_libcommon_a_SOURCES = \
	common/util.c common/util.h \
	common/status.c common/status.h \
	common/log.c common/log.h \
	common/frame.c common/frame.h \
	common/protocol.c common/protocol.h \
	common/ptimer.c common/ptimer.h \
	common/mount-list.c common/mount-list.h \
	common/msg.c common/msg.h \
	common/msg-pb.c common/msg-pb.h \
	common/transport.c common/transport.h \
	common/rpc-server.c common/rpc-client.c common/rpc.h

COMMON_LIBS = common/libcommon.a $(PROTO_LIBS) $(LIBEVENT_LIBS) $(JANSSON_LIBS)

# The daemons' seccomp self-confinement (docs/SECCOMP.md): a library of its own, because only
# vmshim and vmshim-agent link libseccomp.
noinst_LIBRARIES += common/libconfine.a
common_libconfine_a_SOURCES = common/confine.c common/confine.h
CONFINE_LIBS = common/libconfine.a $(SECCOMP_LIBS)
EXTRA_DIST += docs/SECCOMP.md
