# common/seccomp.c: self-confinement with libseccomp (the hardening work owns this file).
# A second noinst library so common/local.mk stays untouched; the daemons link
# $(SECCOMP_CONF_LIBS). seccomp.c is built without -I common: libseccomp's header is also
# named seccomp.h, and <seccomp.h> must find libseccomp's, "seccomp.h" ours.
noinst_LIBRARIES += common/libseccompconf.a
common_libseccompconf_a_SOURCES = common/seccomp.c common/seccomp.h
common_libseccompconf_a_CPPFLAGS = -I$(top_srcdir) -I$(top_builddir)
common_libseccompconf_a_CFLAGS = $(AM_CFLAGS)

SECCOMP_CONF_LIBS = common/libseccompconf.a $(SECCOMP_LIBS)

# Forks confined children and checks what the kernel refuses and what still works.
check_PROGRAMS += tests/unit/test_seccomp
TESTS += tests/unit/test_seccomp
# The filter must also let the TSan runtime work (contrib/check runs these under TSan).
TSAN_TESTS += tests/unit/test_seccomp
tests_unit_test_seccomp_SOURCES = tests/unit/test_seccomp.c
tests_unit_test_seccomp_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS)
tests_unit_test_seccomp_LDADD = $(SECCOMP_CONF_LIBS) $(COMMON_LIBS) $(CUNIT_LIBS)
EXTRA_DIST += docs/SECCOMP.md
