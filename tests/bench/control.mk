# tests/bench: make bench-control (the daemon's control path).
