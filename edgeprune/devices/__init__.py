"""Devices: profiles of IoT targets (flash, RAM, clock, throughput, energy) and the cost of a
model on one (flash, peak RAM, latency, energy)."""
from edgeprune.devices.cost import (
    Check,
    DeviceCost,
    budget_table,
    check_budget,
    model_cost,
)
from edgeprune.devices.profiles import (
    Budget,
    DeviceProfile,
    builtin_profiles,
    load_profile,
)

__all__ = ["Check", "DeviceCost", "budget_table", "check_budget", "model_cost", "Budget", "DeviceProfile", "builtin_profiles", "load_profile"]
