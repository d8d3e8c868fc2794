# tests/lib/: helpers shared by the test programs (testlib.h), built for make check only.
check_LIBRARIES += tests/lib/libtestlib.a
tests_lib_libtestlib_a_SOURCES = tests/lib/testlib.c tests/lib/testlib.h
TESTLIB_CFLAGS = -I$(top_srcdir)/tests/lib
TESTLIB_LIBS = tests/lib/libtestlib.a

# Every test program is built by make check, and the unit tests need CUnit: without it (a
# warning at configure time) make check stops here and says what to install.
if !HAVE_CUNIT
EXTRA_tests_lib_libtestlib_a_DEPENDENCIES = cunit-missing
cunit-missing:
	@echo "make check needs CUnit, which configure did not find:" >&2; \
	echo "  apt-get install libcunit1-dev, then run configure again" >&2; \
	exit 1
endif
