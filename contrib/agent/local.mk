# contrib/agent/: vmshim-agent, the reference guest agent.
sbin_PROGRAMS += contrib/agent/vmshim-agent
contrib_agent_vmshim_agent_SOURCES = \
	contrib/agent/agent.h contrib/agent/runner.h contrib/agent/stats.h \
	contrib/agent/main.c \
	contrib/agent/listen.c \
	contrib/agent/control.c contrib/agent/control.h \
	contrib/agent/control-call.c \
	contrib/agent/control-event.c \
	contrib/agent/control-lifecycle.c \
	contrib/agent/control-mount.c \
	contrib/agent/control-overlap.c \
	contrib/agent/control-process.c \
	contrib/agent/stream.c contrib/agent/stream.h \
	contrib/agent/stream-input.c \
	contrib/agent/stream-output.c \
	contrib/agent/proc.c contrib/agent/proc.h \
	contrib/agent/proc-helper.c \
	contrib/agent/proc-reap.c \
	contrib/agent/proc-stdio.c \
	contrib/agent/rootfs.c \
	contrib/agent/guest-env.c \
	contrib/agent/stats.c \
	contrib/agent/disk.c contrib/agent/disk.h \
	contrib/agent/runner.c \
	contrib/agent/runner-process.c \
	contrib/agent/runner-oci.c contrib/agent/runner-oci.h \
	contrib/agent/runner-oci-run.c
contrib_agent_vmshim_agent_CFLAGS = $(AM_CFLAGS)
contrib_agent_vmshim_agent_LDFLAGS = $(AM_LDFLAGS) $(LINKAGE_LDFLAGS)
contrib_agent_vmshim_agent_LDADD = $(CONFINE_LIBS) $(COMMON_LIBS)
