# shim/: the vmshim daemon and vmshimctl (filled in by the daemon issue).
