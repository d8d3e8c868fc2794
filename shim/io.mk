# shim/io-*.c: the stdio data plane, linked into vmshim through shim_io_files.
shim_io_files = shim/io.h shim/io-int.h shim/io-prepare.c shim/io-bridge.c

check_PROGRAMS += tests/unit/test_io
TESTS += tests/unit/test_io
tests_unit_test_io_SOURCES = tests/unit/test_io.c $(shim_io_files)
tests_unit_test_io_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_io_LDADD = $(UNIT_LDADD)
