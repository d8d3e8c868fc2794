# tests/integration/limits: registered here by the limits work.
