# tests/integration/hotplug: registered here by the hotplug work.
