# tests/integration/stdio: registered here by the stdio work.
