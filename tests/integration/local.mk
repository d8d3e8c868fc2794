# tests/integration/: drive the real binaries on a private runtime directory.
