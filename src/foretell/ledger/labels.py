"""Labels: the outcomes that arrive after the predictions, stored beside the ledger until a query joins them.

A label names its prediction either exactly (`prediction_id`, and `row` within the
request) or by entity `key` and the moment the outcome was known (`observed_at`); the
point-in-time join is the reader's (`ledger.query`). Every label is checked before any
is written, and each load (a file from the CLI, one POST) becomes one Parquet file,
published whole: `labels/model=<name>/labels-<ms>-<writer>-<seq>.parquet`. A file's
rows that fail a check go, with their values and the reason, to
`labels/_rejects/model=<name>/rejects-<ms>-<writer>.parquet`; a POST with a bad label is
refused whole.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa

from foretell.errors import InvalidInput, RowError
from foretell.formats import read_file
from foretell.ledger.record import new_prediction_id, writer_id
from foretell.ledger.segments import LedgerLocation

__all__ = [
    "LABEL_SCHEMA",
    "MAX_LABELS_PER_REQUEST",
    "Label",
    "LabelLoad",
    "check_model_name",
    "load_labels",
    "parse_labels",
    "publish_labels",
    "write_labels",
]

MAX_LABELS_PER_REQUEST: Final = 10_000
"""Labels one `POST /v1/labels` may carry; more go in several requests (or a file, `foretell labels load`)."""

LABEL_SCHEMA: Final = pa.schema(
    [
        pa.field("label_id", pa.string()),
        pa.field("key", pa.string()),
        pa.field("prediction_id", pa.string()),
        pa.field("row", pa.int32()),
        pa.field("label", pa.string()),
        pa.field("label_value", pa.float64()),
        pa.field("observed_at", pa.timestamp("us", tz="UTC")),
        pa.field("loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_FIELDS = frozenset({"key", "prediction_id", "row", "label", "observed_at"})
_BODY_FIELDS = frozenset({"model", "labels"})
_MAX_ROW = 2**31 - 1  # `row` is int32 on disk
_file_numbers = itertools.count()


@dataclass(frozen=True, slots=True)
class Label:
    """One checked label: what it says, and which prediction it is about."""

    label: str
    """The label as text (`1`, `0.5`, `true`, `churned`)."""
    label_value: float | None
    """The label as a number when it is one (true/false as 1/0), else None."""
    observed_at: datetime
    key: str | None = None
    prediction_id: str | None = None
    row: int | None = None


@dataclass(frozen=True, slots=True)
class LabelLoad:
    """What `load_labels` did: labels written, rows refused, and where each went."""

    accepted: int
    rejected: int
    labels_path: str | None
    rejects_path: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "labels_path": self.labels_path,
            "rejects_path": self.rejects_path,
        }


def check_model_name(model: object) -> str:
    if not isinstance(model, str) or not _MODEL_NAME.match(model):
        raise InvalidInput(f"model must be a registered model's name ([A-Za-z0-9][A-Za-z0-9_.-]*); got {_shown(model)}")
    return model


# -- one value at a time: None when it is fine, else the rule it broke -----------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _key(value: Any) -> str | None:
    """An entity key as text: text, or a whole number (ids read from CSV are numbers)."""
    if isinstance(value, str) and value != "":
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _label(value: Any) -> tuple[str, float | None] | None:
    """(text, number) for a scalar label; None for anything else (missing, a list, NaN)."""
    if isinstance(value, bool):
        return ("true" if value else "false"), float(value)
    if isinstance(value, int):
        return str(value), float(value)
    if isinstance(value, float):
        return (repr(value), value) if math.isfinite(value) else None
    if isinstance(value, str) and value.strip():
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return value, float(lowered == "true")
        try:
            number = float(value)
        except ValueError:
            return value, None
        return value, number if math.isfinite(number) else None
    return None


def _moment(value: Any) -> datetime | None:
    """A timestamp from ISO 8601 text or a date/time value; one without a zone is UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


_KEY_RULE = "an entity key is non-empty text or a whole number"
_LABEL_RULE = "a label is one value: text, a number (finite) or true/false"
_TEXT_TIME_RULE = "a time is ISO 8601 text (2026-12-04T10:00:00Z)"
_TIME_RULE = f"{_TEXT_TIME_RULE} or a timestamp column"


# -- POST /v1/labels ---------------------------------------------------------------------------------


def parse_labels(body: bytes, *, now: datetime | None = None) -> tuple[str, list[Label]]:
    """The model and labels of a `POST /v1/labels` body, every label checked; else `InvalidInput` naming each bad one.

    `{"model": "churn", "labels": [{"key": "C-1", "label": 1, "observed_at": "2026-12-04T10:00:00Z"},
    {"prediction_id": "…", "row": 0, "label": 0}]}`; `labels` may be one object instead of a list.
    A label without `observed_at` was observed now.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"the body is a JSON object with model and labels; got {_shown(document)}")
    unknown = sorted(set(document) - _BODY_FIELDS)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field; a labels body has model and labels")
    model = check_model_name(document.get("model"))
    given = document.get("labels")
    items = [given] if isinstance(given, dict) else given
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"labels: a label object or a non-empty list of them; got {_shown(given)}")
    if len(items) > MAX_LABELS_PER_REQUEST:
        raise InvalidInput(
            f"labels: at most {MAX_LABELS_PER_REQUEST} labels per request (MAX_LABELS_PER_REQUEST); "
            f"got {len(items)}: send them in several requests, or load a file with `foretell labels load`"
        )
    moment = now or datetime.now(UTC)
    labels: list[Label] = []
    errors: list[RowError] = []
    for index, item in enumerate(items):
        checked = _check_item(index, item, moment)
        if isinstance(checked, Label):
            labels.append(checked)
        else:
            errors.extend(checked)
    if errors:
        shown = "; ".join(_describe(e) for e in errors)
        noun = "label" if len({e.row for e in errors}) == 1 else "labels"
        bad = len({e.row for e in errors})
        raise InvalidInput(f"{bad} of {len(items)} {noun} invalid, none recorded: {shown}", errors)
    return model, labels


def _describe(error: RowError) -> str:
    text = (
        f"labels[{error.row}].{error.field}: {error.reason}" if error.field else f"labels[{error.row}]: {error.reason}"
    )
    return f"{text}; got {_shown(error.received)}" if error.received is not None else text


def _check_item(index: int, item: Any, now: datetime) -> Label | list[RowError]:
    if not isinstance(item, dict):
        return [RowError(index, None, "a label is a JSON object", item)]
    errors = [RowError(index, name, "unknown field", item[name]) for name in sorted(set(item) - _LABEL_FIELDS)]
    prediction_id = item.get("prediction_id")
    key = None
    row = None
    if prediction_id is not None:
        if not isinstance(prediction_id, str) or not prediction_id:
            errors.append(RowError(index, "prediction_id", "a prediction id is non-empty text", prediction_id))
        if "row" in item:
            row = item["row"]
            if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= _MAX_ROW:
                errors.append(RowError(index, "row", "the row within the request is a whole number ≥ 0", row))
                row = None
    else:
        if "row" in item:
            errors.append(RowError(index, "row", "row goes with prediction_id, not with key", item["row"]))
        if "key" not in item:
            errors.append(RowError(index, "key", "a label names its prediction by key (or by prediction_id)"))
        elif (key := _key(item["key"])) is None:
            errors.append(RowError(index, "key", _KEY_RULE, item["key"]))
    label = _label(item.get("label"))
    if label is None:
        reason = _LABEL_RULE if "label" in item else "every label has its label (the outcome)"
        errors.append(RowError(index, "label", reason, item.get("label")))
    observed = now
    if item.get("observed_at") is not None:
        found = _moment(item["observed_at"]) if isinstance(item["observed_at"], str) else None
        if found is None:
            errors.append(RowError(index, "observed_at", _TEXT_TIME_RULE, item["observed_at"]))
        else:
            observed = found
    if errors or label is None:
        return errors
    return Label(label[0], label[1], observed, key=key, prediction_id=prediction_id, row=row)


# -- files and the labels store ----------------------------------------------------------------------


def write_labels(location: LedgerLocation, model: str, labels: Sequence[Label], *, now: datetime | None = None) -> int:
    """Publish `labels` (checked by `parse_labels`) as one file, whole; returns how many.

    For `POST /v1/labels`: `model, labels = parse_labels(body)` (which refuses the whole
    body on any bad label), then `write_labels(location, model, labels)`.
    """
    publish_labels(location, model, labels, now=now)
    return len(labels)


def publish_labels(
    location: LedgerLocation, model: str, labels: Sequence[Label], *, now: datetime | None = None
) -> str:
    """`write_labels`, returning the file's path. Labels of one file share `loaded_at`: the last of them wins a tie."""
    check_model_name(model)
    if not labels:
        raise InvalidInput("no labels to write")
    loaded = now or datetime.now(UTC)
    table = pa.table(
        {
            "label_id": [new_prediction_id() for _ in labels],
            "key": [lb.key for lb in labels],
            "prediction_id": [lb.prediction_id for lb in labels],
            "row": [lb.row for lb in labels],
            "label": [lb.label for lb in labels],
            "label_value": [lb.label_value for lb in labels],
            "observed_at": [lb.observed_at for lb in labels],
            "loaded_at": [loaded] * len(labels),
        },
        schema=LABEL_SCHEMA,
    )
    name = f"labels-{time.time_ns() // 1_000_000:013d}-{writer_id()}-{next(_file_numbers):06d}.parquet"
    path = location.join("labels", f"model={model}", name)
    location.publish_table(path, table)
    return path


def load_labels(
    location: LedgerLocation,
    model: str,
    source_file: Path,
    *,
    key: str,
    label: str,
    at: str | None = None,
    now: datetime | None = None,
) -> LabelLoad:
    """Labels from a Parquet/CSV/JSON(L) file: the good rows as one labels file, the bad ones with reasons as rejects.

    `key` and `label` name the columns; `at` the column of when each outcome was known
    (ISO text or a timestamp), else every label was observed now.
    """
    check_model_name(model)
    rows = read_file(Path(source_file))
    names = [key, label] + ([at] if at else [])
    columns = _columns(rows, names, Path(source_file).name)
    moment = now or datetime.now(UTC)
    good: list[Label] = []
    bad: list[tuple[int, str]] = []
    for index in range(len(columns[key])):
        reasons = []
        entity = _key(columns[key][index])
        if entity is None:
            reasons.append(f"{key}: {_KEY_RULE}; got {_shown(columns[key][index])}")
        value = _label(columns[label][index])
        if value is None:
            reasons.append(f"{label}: {_LABEL_RULE}; got {_shown(columns[label][index])}")
        observed = _moment(columns[at][index]) if at else moment
        if observed is None and at:
            reasons.append(f"{at}: {_TIME_RULE}; got {_shown(columns[at][index])}")
        if reasons or entity is None or value is None or observed is None:
            bad.append((index, "; ".join(reasons)))
        else:
            good.append(Label(value[0], value[1], observed, key=entity))
    rejects_path = _write_rejects(location, model, rows, bad) if bad else None
    labels_path = publish_labels(location, model, good, now=moment) if good else None
    return LabelLoad(len(good), len(bad), labels_path, rejects_path)


def _columns(rows: pa.Table | list[dict[str, Any]], names: Sequence[str], where: str) -> dict[str, list[Any]]:
    """The named columns as Python values; a column the file lacks altogether is refused (it is no row's fault)."""
    if isinstance(rows, pa.Table):
        present = set(rows.column_names)
        found = {name: rows.column(name).to_pylist() for name in names if name in present}
    else:
        present = {name for row in rows for name in row}
        found = {name: [row.get(name) for row in rows] for name in names if name in present}
    missing = [name for name in names if name not in present]
    if missing:
        raise InvalidInput(
            f"{where} has no column {missing[0]!r} (its columns: {', '.join(sorted(present)) or 'none'}); "
            "name the key, label and time columns with --key, --label and --at"
        )
    return found


def _write_rejects(
    location: LedgerLocation, model: str, rows: pa.Table | list[dict[str, Any]], bad: Sequence[tuple[int, str]]
) -> str:
    indices = [index for index, _ in bad]
    if isinstance(rows, pa.Table):
        originals = rows.take(pa.array(indices, pa.int64())).to_pylist()
    else:
        originals = [rows[i] for i in indices]
    table = pa.table(
        {
            "row": pa.array(indices, pa.int64()),
            "values": pa.array([orjson.dumps(v, default=str).decode() for v in originals], pa.string()),
            "reason": pa.array([reason for _, reason in bad], pa.string()),
        }
    )
    name = f"rejects-{time.time_ns() // 1_000_000:013d}-{writer_id()}.parquet"
    path = location.join("labels", "_rejects", f"model={model}", name)
    location.publish_table(path, table)
    return path
