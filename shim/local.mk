# shim/: the vmshim daemon (owned by the daemon work). The io data plane lists its sources in
# shim/io.mk as shim_io_files; vmshimctl lives in shim/ctl/local.mk.
