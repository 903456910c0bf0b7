"""`foretell advise`: when to use batch, real-time or hybrid, from measurements of the user's own model."""

from foretell.advisor.cost import Advice, Measurements, ModeCost, advise, live_cost_per_request
from foretell.advisor.workload import PRESETS, Workload, load_workload, workload_from

__all__ = [
    "PRESETS",
    "Advice",
    "Measurements",
    "ModeCost",
    "Workload",
    "advise",
    "live_cost_per_request",
    "load_workload",
    "workload_from",
]
