# shim/io-*.c: the stdio data plane, linked into vmshim through shim_io_files.
shim_io_files = shim/io.h shim/io-int.h shim/io-prepare.c shim/io-bridge.c
