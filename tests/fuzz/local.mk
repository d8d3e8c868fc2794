# tests/fuzz/: libFuzzer targets (--enable-fuzzing) and their corpus regression runs.
