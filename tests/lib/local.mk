# tests/lib/: helpers shared by the test programs (testlib.h), built for make check only.
check_LIBRARIES += tests/lib/libtestlib.a
tests_lib_libtestlib_a_SOURCES = tests/lib/testlib.c tests/lib/testlib.h
TESTLIB_CFLAGS = -I$(top_srcdir)/tests/lib
TESTLIB_LIBS = tests/lib/libtestlib.a
