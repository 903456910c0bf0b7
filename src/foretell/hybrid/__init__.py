"""Hybrid serving: precomputed predictions by key, a live fallback, and refreshes on events."""

from foretell.hybrid.events import Event, FeaturesEvent, InteractionEvent, parse_event
from foretell.hybrid.freshness import DEFAULT_MAX_AGE_S, parse_duration
from foretell.hybrid.service import HybridService, Lookup

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "Event",
    "FeaturesEvent",
    "HybridService",
    "InteractionEvent",
    "Lookup",
    "parse_duration",
    "parse_event",
]
