"""What the hot paths get from `foretell.tracing` where nothing is recorded: shared objects that do nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["NO_SPAN", "UNTRACED", "NoSpan", "Untraced"]


class NoSpan:
    """The current span outside any (or under a trace not sampled): what is set on it goes nowhere."""

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        return None

    def update_name(self, name: str) -> None:
        return None


class Untraced:
    """What `maybe_span` and its kind give while tracing is off: a `with` that does nothing."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = NoSpan()
UNTRACED = Untraced()
