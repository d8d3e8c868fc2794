# packaging/, man pages, completion, config and units: what make install lays out.
