"""Agreement between modes on real traffic: a key scored by the batch, then scored live.

Each live-sourced prediction with a key ('live', 'live-fallback', 'event-refresh') is paired
with the latest batch prediction of the same key and version made before it (an ASOF join
in DuckDB). The pair is *unchanged* when the inputs the live call was given equal the
batch job's input row for that key (`batch_inputs`), feature by feature; then the two
scores must be identical up to float rounding, as one prediction path promises, and any
greater difference is a parity defect, listed with its key. Otherwise the features changed since the batch (an event, a
new day's data) and the difference is the model's answer to that change: it is summarised,
not blamed. Pairs whose live inputs were not recorded, or whose job input file is gone,
cannot be told apart and are counted as such.
"""

# ruff: noqa: S608 - names are quoted by sql.ident

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from foretell.monitor.sql import columns, fields, ident, is_numeric, iso

if TYPE_CHECKING:
    from foretell.ledger.session import LedgerSession

__all__ = ["AgreementSection", "ParityDefect", "agreement_section"]

LIVE_SOURCES = ("live", "live-fallback", "event-refresh")
#: How many parity defects the section lists (all are counted).
LISTED_DEFECTS = 50
#: Unchanged inputs must give the same score up to float rounding: the one prediction path is deterministic, but
#: a BLAS library may sum one row and many rows in different orders (OpenBLAS's AVX-512 kernels do: a logistic
#: regression's single-row and 1,000-row scores differed in the last bit for 169 of 1,000 rows). Those differ by
#: about 1e-16 of the score; a float32 compiled predictor's by about 1e-7, and a real defect by far more.
PARITY_RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ParityDefect:
    key: str
    job_id: str
    batch_at: str
    batch_score: float
    prediction_id: str
    live_at: str
    source: str
    live_score: float
    difference: float  # live - batch


@dataclass(frozen=True)
class Differences:
    pairs: int
    keys: int
    mean_abs: float | None
    p95_abs: float | None
    max_abs: float | None


@dataclass(frozen=True)
class AgreementSection:
    output: str | None  # the compared output (the score); None when the model has none
    pairs: int  # live predictions that had an earlier batch prediction of their key and version
    keys: int
    unchanged: Differences  # inputs equal to the batch job's row: must not differ
    changed: Differences  # inputs changed since the batch
    unknown: int  # pairs whose inputs could not be compared (not recorded, or the job's input is gone)
    defects: int  # unchanged pairs whose scores differ
    defect_keys: int
    listed: tuple[ParityDefect, ...]  # the first LISTED_DEFECTS, largest difference first
    compared_features: tuple[str, ...]  # the features compared between live inputs and the batch input

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "pairs": self.pairs,
            "keys": self.keys,
            "unchanged": asdict(self.unchanged),
            "changed": asdict(self.changed),
            "unknown": self.unknown,
            "parity_defects": self.defects,
            "parity_defect_keys": self.defect_keys,
            "defects": [asdict(d) for d in self.listed],
            "compared_features": list(self.compared_features),
        }


_NONE = Differences(0, 0, None, None, None)


def agreement_section(session: LedgerSession, output: str | None) -> AgreementSection:
    outputs = fields(session, "predictions", "outputs")
    if output is None or output not in outputs or not is_numeric(outputs[output]):
        return AgreementSection(output, 0, 0, _NONE, _NONE, 0, 0, 0, (), ())
    compared = _compared(session)
    live_sources = ", ".join(f"'{s}'" for s in LIVE_SOURCES)
    score = f"CAST(outputs.{ident(output)} AS DOUBLE)"
    recorded = "inputs IS NOT NULL" if compared else "false"
    live_digest = _digest({name: (f"inputs.{ident(name)}", kinds) for name, kinds in compared.items()})
    batch_digest = _digest({name: (ident(name), kinds) for name, kinds in compared.items()})
    bound = f"{PARITY_RELATIVE_TOLERANCE!r} * greatest(abs(score), abs(batch_score))"
    defect = f"kind = 'unchanged' AND abs(difference) > {bound}"
    defect_row = (
        "struct_pack(key := key, job_id := job_id, batch_at := epoch_us(batch_at), batch_score := batch_score, "
        "prediction_id := prediction_id, live_at := epoch_us(predicted_at), source := source, score := score, "
        "difference := difference)"
    )
    # One pass: the pairs, then per kind (and, as the grouping set (), for all of them) the figures.
    rows = session.rows(f"""
WITH live AS (
    SELECT key, version, predicted_at, prediction_id, source, {score} AS score, {recorded} AS recorded,
           {live_digest} AS digest
    FROM predictions
    WHERE source IN ({live_sources}) AND status = 'ok' AND key IS NOT NULL AND {score} IS NOT NULL
),
batch AS (
    SELECT key, version, predicted_at, prediction_id AS job_id, {score} AS score
    FROM predictions WHERE source = 'batch' AND status = 'ok' AND key IS NOT NULL AND {score} IS NOT NULL
),
pairs AS (
    SELECT l.*, b.job_id, b.predicted_at AS batch_at, b.score AS batch_score, l.score - b.score AS difference
    FROM live l ASOF JOIN batch b ON l.key = b.key AND l.version = b.version AND l.predicted_at >= b.predicted_at
),
inputs AS (SELECT job_id, key, {batch_digest} AS digest FROM batch_inputs),
judged AS (
    SELECT p.*,
           CASE WHEN NOT p.recorded OR i.key IS NULL THEN 'unknown' WHEN p.digest = i.digest THEN 'unchanged'
                ELSE 'changed' END AS kind
    FROM pairs p LEFT JOIN inputs i ON i.job_id = p.job_id AND i.key = p.key
)
SELECT kind, count(*), count(DISTINCT key), avg(abs(difference)), quantile_cont(abs(difference), 0.95),
       max(abs(difference)), count(*) FILTER ({defect}), count(DISTINCT key) FILTER ({defect}),
       list({defect_row} ORDER BY abs(difference) DESC, key) FILTER ({defect})
FROM judged GROUP BY GROUPING SETS ((kind), ())
""")
    by_kind = {kind: row for kind, *row in rows}
    total = by_kind.get(None)
    if total is None or not total[0]:
        return AgreementSection(output, 0, 0, _NONE, _NONE, 0, 0, 0, (), tuple(compared))
    listed = (total[7] or [])[:LISTED_DEFECTS]
    unknown = by_kind.get("unknown")
    return AgreementSection(
        output=output,
        pairs=int(total[0]),
        keys=int(total[1]),
        unchanged=_differences(by_kind.get("unchanged")),
        changed=_differences(by_kind.get("changed")),
        unknown=int(unknown[0]) if unknown else 0,
        defects=int(total[5]),
        defect_keys=int(total[6]),
        listed=tuple(_defect(d) for d in listed),
        compared_features=tuple(compared),
    )


def _defect(d: dict[str, Any]) -> ParityDefect:
    return ParityDefect(
        key=str(d["key"]),
        job_id=str(d["job_id"]),
        batch_at=iso(d["batch_at"]),
        batch_score=float(d["batch_score"]),
        prediction_id=str(d["prediction_id"]),
        live_at=iso(d["live_at"]),
        source=str(d["source"]),
        live_score=float(d["score"]),
        difference=float(d["difference"]),
    )


def _differences(row: Sequence[Any] | None) -> Differences:
    if row is None:
        return _NONE
    n, keys, mean, p95, top = row[:5]
    return Differences(int(n), int(keys), _float(mean), _float(p95), _float(top))


def _compared(session: LedgerSession) -> dict[str, tuple[str, str]]:
    """Features recorded live that the batch jobs' input files also hold: name -> (live type, batch type)."""
    live = fields(session, "predictions", "inputs")
    batch = columns(session, "batch_inputs")
    reserved = {"job_id", "version", "predicted_at", "key"}
    return {name: (kind, batch[name]) for name, kind in live.items() if name in batch and name not in reserved}


def _digest(values: dict[str, tuple[str, tuple[str, str]]]) -> str:
    """A 64-bit hash of a row's compared features, each normalised so that equal inputs hash alike on both sides.

    Numbers are compared as numbers (DOUBLE) when both sides hold numbers, anything else as
    text (a category by its name); NaN in a file is what the signature reads as missing,
    and the ledger records as null. Only the hash travels with each pair (through the ASOF
    join and the grouped scans after it): carrying 31 features made the section 1.25x slower
    (docs/benchmarks.md, "Monitor"). Two different rows sharing a hash (about 1 in 2^64) would
    be judged `unchanged`, and a difference between them would show as a defect.
    """
    if not values:
        return "NULL::UBIGINT"
    packed = []
    for name, (column, (live_type, batch_type)) in values.items():
        if is_numeric(live_type) and is_numeric(batch_type):
            value = f"nullif(CAST({column} AS DOUBLE), 'NaN'::DOUBLE)"
        else:
            value = f"CAST({column} AS VARCHAR)"
        packed.append(f"{ident(name)} := {value}")
    return f"hash(struct_pack({', '.join(packed)}))"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
