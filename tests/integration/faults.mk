# tests/integration/faults: registered here by the faults work.
