# common/: the internal library shared by vmshim, vmshim-agent and the tests.
noinst_LIBRARIES += common/libcommon.a
common_libcommon_a_SOURCES = \
	common/util.c common/util.h \
	common/status.c common/status.h \
	common/log.c common/log.h \
	common/frame.c common/frame.h \
	common/ptimer.c common/ptimer.h \
	common/msg.c common/msg.h \
	common/transport.c common/transport.h \
	common/conn.c common/conn.h \
	common/rpc-server.c common/rpc-client.c common/rpc.h

COMMON_LIBS = common/libcommon.a $(LIBEVENT_LIBS) $(JANSSON_LIBS)
