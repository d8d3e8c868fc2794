# tests/bench: make bench-stdio (the stdio data plane).
