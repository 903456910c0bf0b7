"""The verdict: the monitor's sections read out as a status and a few plain sentences.

Each sentence says what is wrong, since when, and which features, keys or sources, with the
figure and the threshold it passed, as `foretell advise` gives its reasons. The status is
the worst of the findings: `alert` wants someone to act (a feature or the score drifted past
its alert threshold, batch and live disagree on unchanged inputs, many predictions fail),
`warn` wants a look, `ok` says what was checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from foretell.monitor.agreement import AgreementSection
    from foretell.monitor.drift import DriftSection
    from foretell.monitor.quality import QualitySection
    from foretell.monitor.traffic import TrafficSection
    from foretell.profiles.drift import FeatureDrift

__all__ = ["Finding", "Verdict", "verdict"]

Status = Literal["ok", "warn", "alert"]
_RANK: dict[str, int] = {"ok": 0, "warn": 1, "alert": 2}

#: A source whose share of failed predictions reaches these is flagged.
ERRORS_WARN = 0.01
ERRORS_ALERT = 0.05
#: A source's AUC this far below the best source's (each with enough labels) is flagged.
AUC_GAP_WARN = 0.05
MIN_LABELLED = 200
_NAMED = 5  # features or keys named in one sentence


@dataclass(frozen=True)
class Finding:
    area: Literal["traffic", "drift", "agreement", "quality"]
    status: Status
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "status": self.status, "sentence": self.sentence}


@dataclass(frozen=True)
class Verdict:
    status: Status
    findings: tuple[Finding, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """The sentences, what needs acting on first."""
        return tuple(f.sentence for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": list(self.reasons), "findings": [f.to_dict() for f in self.findings]}


def verdict(
    model: str,
    traffic: TrafficSection,
    drift: DriftSection,
    agreement: AgreementSection,
    quality: QualitySection,
) -> Verdict:
    findings: list[Finding] = []
    if traffic.rows == 0:
        findings.append(Finding("traffic", "warn", f"No predictions of {model} in the window: nothing to judge."))
        return Verdict("warn", tuple(findings))
    findings += _errors(traffic)
    findings += _drift(model, drift)
    findings += _agreement(agreement)
    findings += _quality(quality)
    ordered = tuple(sorted(findings, key=lambda f: -_RANK[f.status]))  # stable: areas keep their order
    status: Status = ordered[0].status if ordered else "ok"
    return Verdict(status, ordered)


def when(iso: str | None) -> str:
    """`2026-12-05T10:00:00+00:00` as `2026-12-05 10:00 UTC`."""
    if not iso:
        return "the start of the window"
    moment = datetime.fromisoformat(iso)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _listing(names: Sequence[str], total: int | None = None) -> str:
    shown = ", ".join(names[:_NAMED])
    more = (total if total is not None else len(names)) - min(len(names), _NAMED)
    return shown + (f" and {more} more" if more > 0 else "")


def _errors(traffic: TrafficSection) -> list[Finding]:
    findings = []
    top = f" (most often: {traffic.top_errors[0][0]}, {traffic.top_errors[0][1]:,} times)" if traffic.top_errors else ""
    for source in traffic.sources:
        rate = source.error_rate
        if rate < ERRORS_WARN:
            continue
        status: Status = "alert" if rate >= ERRORS_ALERT else "warn"
        limit = ERRORS_ALERT if status == "alert" else ERRORS_WARN
        findings.append(
            Finding(
                "traffic",
                status,
                f"{rate:.1%} of {source.source} predictions failed ({source.errors:,} of {source.rows:,}, "
                f"{status} at {limit:.0%}) since {when(source.first_error_at)}{top}.",
            )
        )
    return findings


def _drift(model: str, drift: DriftSection) -> list[Finding]:
    if drift.reference is None:
        version = f"version {drift.version}" if drift.version is not None else "this model"
        return [
            Finding(
                "drift",
                "ok",
                f"No reference profile is stored for {version}, so drift was not measured "
                f"(foretell models profile {model}/{drift.version if drift.version is not None else 'VERSION'} "
                "stores one).",
            )
        ]
    findings = []
    for status in ("alert", "warn"):
        features = [f for f in drift.features if f.status == status]
        if features:
            findings.append(Finding("drift", status, _drifted(features, len(drift.features), status)))
        outputs = [f for f in drift.outputs if f.status == status]
        for output in outputs:
            findings.append(
                Finding(
                    "drift",
                    status,
                    f"The {output.name} output's distribution moved ({'; '.join(output.reasons)}) "
                    f"since {when(output.since)}.",
                )
            )
    if not findings:
        also = " and the outputs" if drift.outputs else ""
        findings.append(
            Finding(
                "drift",
                "ok",
                f"All {len(drift.features)} features{also} are within their drift thresholds "
                f"over {drift.rows:,} predictions.",
            )
        )
    return findings


def _drifted(features: Sequence[FeatureDrift], total: int, status: str) -> str:
    ordered = sorted(features, key=lambda f: (f.since or "", -(f.psi or 0.0)))
    since = min((f.since for f in features if f.since), default=None)
    named = [f"{f.name} ({_in(f)}{'; '.join(f.reasons)})" for f in ordered]
    verb = "has" if len(features) == 1 else "have"
    return (
        f"{len(features)} of {total} features {verb} drifted past the {status} threshold since {when(since)}: "
        f"{_listing(named)}."
    )


def _in(drift: FeatureDrift) -> str:
    """Which traffic drifted: online (live-sourced requests) or batch (the jobs' input files)."""
    return f"{drift.group} traffic: " if drift.group else ""


def _agreement(agreement: AgreementSection) -> list[Finding]:
    if agreement.pairs == 0:
        return []
    if agreement.defects:
        keys = list(dict.fromkeys(d.key for d in agreement.listed))
        first = min((d.live_at for d in agreement.listed), default=None)
        largest = agreement.listed[0].difference if agreement.listed else 0.0
        return [
            Finding(
                "agreement",
                "alert",
                f"Parity defect: {_count(agreement.defects, 'live score')} of {_count(agreement.defect_keys, 'key')} "
                f"{'differs' if agreement.defects == 1 else 'differ'} from the batch's although the features had not "
                f"changed since it (largest {largest:+.3g}), since {when(first)}: "
                f"{'key' if len(keys) == 1 else 'keys'} {_listing(keys, agreement.defect_keys)}.",
            )
        ]
    unchanged, changed = agreement.unchanged, agreement.changed
    sentence = (
        f"Batch and live agree: {unchanged.keys:,} keys scored live with the features the batch saw got the "
        "batch's exact score"
    )
    if changed.pairs:
        sentence += (
            f"; {changed.keys:,} keys whose features changed since differ by {changed.mean_abs or 0:.3g} on average "
            f"(p95 {changed.p95_abs or 0:.3g})"
        )
    return [Finding("agreement", "ok", sentence + ".")]


def _quality(quality: QualitySection) -> list[Finding]:
    if quality.task.kind == "none":
        return []
    if quality.labels == 0:
        return [Finding("quality", "ok", "No labels have joined the window's predictions yet: quality not measured.")]
    cells = [c for c in quality.cells if c.labelled]
    if quality.task.kind == "recommender":
        shown = ", ".join(f"{c.source} v{c.version} {c.hit_rate:.1%} of {c.labelled:,}" for c in cells)
        return [Finding("quality", "ok", f"Hit rate@{cells[0].k}: {shown}.")]
    if quality.task.kind == "regression":
        shown = ", ".join(f"{c.source} v{c.version} {c.mae:.4g} over {c.labelled:,}" for c in cells)
        return [Finding("quality", "ok", f"Mean absolute error: {shown}.")]
    measured = [c for c in cells if c.auc is not None]
    shown = ", ".join(f"{c.source} v{c.version} {c.auc:.3f} over {c.labelled:,}" for c in measured)
    findings = [Finding("quality", "ok", f"AUC: {shown}.")] if measured else []
    enough = [c for c in measured if c.labelled >= MIN_LABELLED]
    if len(enough) > 1:
        best = max(enough, key=lambda c: c.auc or 0.0)
        for cell in enough:
            gap = (best.auc or 0.0) - (cell.auc or 0.0)
            if gap >= AUC_GAP_WARN:
                findings.append(
                    Finding(
                        "quality",
                        "warn",
                        f"AUC of {cell.source} v{cell.version} ({cell.auc:.3f}) is {gap:.3f} below "
                        f"{best.source} v{best.version}'s ({best.auc:.3f}; warn at {AUC_GAP_WARN}).",
                    )
                )
    return findings
