"""`foretell advise MODEL --from-ledger`: the advisor on the workload the ledger recorded, not one described by hand."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.advice import advise
from foretell.api.ledger import _moment, ledger_location
from foretell.errors import InvalidInput

if TYPE_CHECKING:
    from foretell.advisor import Measurements
    from foretell.advisor.current import LedgerAdvice

#: How far back `advise --from-ledger` reads when not told.
DEFAULT_SINCE = "7d"


def advise_from_ledger(
    uri: str,
    *,
    since: str | datetime | None = DEFAULT_SINCE,
    until: str | datetime | None = None,
    ledger: str | Path | None = None,
    day_length: str | float | None = None,
    settings: Mapping[str, Any] | None = None,
    file: str | Path | None = None,
    config: str | Path | None = None,
    quick: bool = False,
    sample: str | Path | None = None,
    home: Path | str | None = None,
    progress: Callable[[str, float], None] | None = None,
    measurements: Measurements | None = None,
) -> LedgerAdvice:
    """Measure the workload of `uri`'s model in the ledger between `since` and `until`, and advise on it.

    `settings` (workload settings, a `preset`) and a workload `file` override what was
    measured; `config` is the serve config in use (its `max_age` is the freshness need);
    `day_length` treats that much ledger time as a day (a compressed recording). The model
    is measured on this machine as `advise` does, unless `measurements` are given.
    """
    from foretell.advisor import advise as price
    from foretell.advisor.current import LedgerAdvice
    from foretell.advisor.observed import observe, workload_from_ledger
    from foretell.config import parse_duration
    from foretell.ledger.batch_index import batch_jobs
    from foretell.ledger.query import LedgerReader
    from foretell.registry.uri import parse_model_uri

    name = parse_model_uri(uri).name
    start = _moment("since", since if since is not None else DEFAULT_SINCE)
    end = _moment("until", until) or datetime.now(UTC)
    assert start is not None
    if start >= end:
        raise InvalidInput(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    try:
        day_s = parse_duration(day_length) if day_length is not None else 86_400.0
    except ValueError as exc:
        raise InvalidInput(f"day length: {exc}") from None
    if day_s <= 0:
        raise InvalidInput(f"day length must be more than 0 seconds, got {day_length!r}")
    reader = LedgerReader(ledger_location(ledger, home=home))
    jobs = batch_jobs(reader.location, name)
    with reader.session(name, since=start, until=end) as session:
        traffic = observe(session, name, since=start, until=end, jobs=jobs, day_s=day_s)
    observed = workload_from_ledger(traffic, _options(settings, file), config_max_age_s=_max_age(config, name))
    if measurements is not None:
        advice = price(observed.workload, measurements)
    else:
        advice = advise(uri, observed.workload, quick=quick, sample=sample, home=home, progress=progress)
    return LedgerAdvice(advice, observed, traffic.current)


def advice_config(advice: LedgerAdvice, uri: str) -> str:
    """The recommended knobs as a serve config (TOML), with the batch schedule as a command line in a comment."""
    from foretell.advisor.knobs import serve_config_text

    jobs = advice.observed.traffic.jobs
    return serve_config_text(
        advice.advice,
        advice.observed.traffic.model,
        uri,
        latest_job=jobs[-1] if jobs else None,
        generated_at=datetime.now(UTC),
    )


def ledger_advice_report(advice: LedgerAdvice) -> str:
    """The advice page (`advice_report`) with what the ledger measured and the current set-up's cost."""
    from foretell.advisor.report import render_report

    return render_report(advice.advice, ledger=advice)


#: Workload-file fields that describe the file or the day, not the traffic: never over the measured workload.
_NOT_OVERRIDES = ("name", "description", "day_s", "fallback_share")


def _options(settings: Mapping[str, Any] | None, file: str | Path | None) -> dict[str, Any]:
    from foretell.advisor.workload import workload_settings

    merged: dict[str, Any] = {}
    if file is not None:
        merged.update({k: v for k, v in workload_settings(file).items() if k not in _NOT_OVERRIDES})
    merged.update({k: v for k, v in (settings or {}).items() if v is not None})
    return merged


def _max_age(config: str | Path | None, model: str) -> float | None:
    if config is None:
        return None
    from foretell.serving.config import load_serve_config

    loaded = load_serve_config(config)
    return loaded.model_max_age.get(model, loaded.max_age)
