"""The prediction ledger: a model's history, its export with labels, what it holds, and loading labels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.environment import LEDGER_ENV, home_folder
from foretell.api.models import list_models
from foretell.errors import InvalidInput

if TYPE_CHECKING:
    from datetime import datetime

    from foretell.ledger.labels import LabelLoad


def ledger_location(ledger: str | Path | None = None, *, home: Path | str | None = None) -> str:
    """Where the ledger is: `ledger` if given, else FORETELL_LEDGER (a folder or fsspec URL), else `<home>/ledger`."""
    return str(ledger) if ledger else os.environ.get(LEDGER_ENV) or str(home_folder(home) / "ledger")


def ledger_history(
    model: str,
    *,
    key: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    source: str | None = None,
    version: int | None = None,
    limit: int = 100,
    ledger: str | Path | None = None,
    home: Path | str | None = None,
) -> list[dict[str, Any]]:
    """`model`'s recorded predictions, newest first: live, lookups, events and batch jobs alike.

    `since`/`until` are a datetime, a duration back from now (`24h`, `7d`) or an ISO date/time.
    """
    from foretell.ledger.query import LedgerReader

    return LedgerReader(ledger_location(ledger, home=home)).history(
        model,
        key=key,
        since=_moment("since", since),
        until=_moment("until", until),
        source=source,
        version=version,
        limit=limit,
    )


def ledger_export(
    model: str,
    output: str | Path,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    ledger: str | Path | None = None,
    home: Path | str | None = None,
) -> dict[str, Any]:
    """Every prediction of `model` with its label (joined point in time) as one Parquet file; the counts."""
    from foretell.ledger.query import LedgerReader

    reader = LedgerReader(ledger_location(ledger, home=home))
    counts = reader.export(model, output=Path(output), since=_moment("since", since), until=_moment("until", until))
    return counts.to_dict()


def ledger_stats(*, ledger: str | Path | None = None, home: Path | str | None = None) -> dict[str, Any]:
    """What the ledger holds per model (rows by source, files, bytes, labels) and its writers' totals (drops)."""
    from foretell.ledger.query import LedgerReader

    return LedgerReader(ledger_location(ledger, home=home)).stats()


def load_labels(
    model: str,
    source: str | Path,
    *,
    key: str,
    label: str,
    at: str | None = None,
    ledger: str | Path | None = None,
    home: Path | str | None = None,
) -> LabelLoad:
    """Outcomes from a Parquet/CSV/JSON file into the ledger's labels; bad rows go to a rejects file with reasons.

    `key`, `label` and `at` name the file's columns (without `at`, every outcome was observed now).
    `model` must be registered here or already in the ledger.
    """
    from foretell.errors import ModelNotFound
    from foretell.ledger.labels import check_model_name
    from foretell.ledger.labels import load_labels as load
    from foretell.ledger.segments import LedgerLocation

    location = LedgerLocation(ledger_location(ledger, home=home))
    check_model_name(model)
    if model not in {m.name for m in list_models(home=home)} and model not in location.models():
        raise ModelNotFound(f"no model {model!r} is registered or in the ledger at {location.url}; check the name")
    return load(location, model, Path(source), key=key, label=label, at=at)


def _moment(name: str, value: str | datetime | None) -> datetime | None:
    """A point in time from a datetime, a duration back from now (`24h`, `7d`) or ISO text (UTC unless it says)."""
    from datetime import UTC, datetime, timedelta

    from foretell.config import parse_duration

    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{name} is a duration back from now (90m, 24h, 7d) or an ISO date/time (2026-12-04T10:00Z); got {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
