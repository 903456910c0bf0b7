"""How old a stored prediction may be: durations as people write them, and the age test."""

from __future__ import annotations

from datetime import datetime

from foretell.config import parse_duration

__all__ = ["DEFAULT_MAX_AGE_S", "age_seconds", "parse_duration"]

#: A nightly batch plus two hours of slack: last night's predictions are fresh all day.
DEFAULT_MAX_AGE_S = 26 * 3600.0


def age_seconds(computed_at: str, now: datetime) -> float:
    """Seconds between a stored `computed_at` (fixed-width UTC text) and `now` (aware)."""
    return (now - datetime.fromisoformat(computed_at.replace("Z", "+00:00"))).total_seconds()
