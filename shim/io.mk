# shim/io-*.c: the stdio data plane, linked into vmshim through SHIM_IO_SOURCES.
SHIM_IO_SOURCES = shim/io.h
