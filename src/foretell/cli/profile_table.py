"""A version's reference profile in a few lines: what `foretell models show` and `models profile` print.

Drawn from the profile's JSON form (`ReferenceProfile.to_dict`), so the CLI needs nothing
of the profiles package but what the API hands back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.table import Table

from foretell.cli.output import out

#: The score quantiles the summary shows.
SHOWN_PERCENTILES = (1, 10, 50, 90, 99)
_SOURCES = {"sample": "the registration sample", "validation": "the compile's validation rows (mostly generated)"}


def print_profile(uri: str, profile: Mapping[str, Any] | None) -> None:
    """The profile's header, a row per input (missing rate; median or top category) and its outputs' spread."""
    if profile is None:
        out.print(f"  profile     no profile (foretell models profile {uri})", highlight=False, markup=False)
        return
    source = _SOURCES.get(str(profile["source"]), str(profile["source"]))
    out.print(
        f"  profile     {profile['rows']:,} rows from {source}, {profile['created_at']}", highlight=False, markup=False
    )
    inputs = Table("input", "missing", "median / top category", title="reference profile")
    for name, column in profile["inputs"].items():
        inputs.add_row(escape(name), f"{column['missing_rate']:.1%}", escape(_middle(column)))
    out.print(inputs)
    outputs = Table("output", "missing", *(f"p{p}" for p in SHOWN_PERCENTILES), "top")
    for name, column in profile["outputs"].items():
        quantiles = column.get("quantiles") or []
        shown = [_number(quantiles[p]) if quantiles else "-" for p in SHOWN_PERCENTILES]
        top = _middle(column) if column["kind"] == "categorical" else ""
        outputs.add_row(escape(name), f"{column['missing_rate']:.1%}", *shown, escape(top))
    if profile["outputs"]:
        out.print(outputs)


def _middle(column: Mapping[str, Any]) -> str:
    if column["kind"] == "numeric":
        quantiles = column.get("quantiles") or []
        return _number(quantiles[50]) if quantiles else "-"
    frequencies: Mapping[str, float] = column["frequencies"]
    if not frequencies:
        return "-"
    top = max(frequencies, key=lambda name: frequencies[name])
    return f"{top} ({frequencies[top]:.0%})"


def _number(value: float) -> str:
    return f"{value:.4g}"
