"""Signatures from sample data.

Frameworks often know a model's outputs but not its input names or types (a model
fitted on a bare array sees `f0, f1, ...`, and nothing says a column holds strings); a
sample of the data the model will score fills those in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foretell.core.feature import NUMERIC_DTYPES, Feature
from foretell.core.schema import Signature, default_feature_names
from foretell.errors import InvalidInput, InvalidSignature

__all__ = ["signature_with_sample"]


def signature_with_sample(described: Signature, sample: object) -> Signature:
    """`described` with input names and types read from `sample`; outputs and allow_missing kept."""
    columns = _sample_columns(sample)
    names = [column for column, _ in columns]
    if len(columns) != len(described.inputs):
        raise InvalidSignature(
            f"the sample has {len(columns)} columns {names} but the model takes {len(described.inputs)} "
            f"inputs {described.input_names}"
        )
    kinds = dict(columns)
    if set(names) == set(described.input_names):
        # The sample names the model's own features: keep the model's order, take the sample's types.
        pairs = [(feature, feature.name, kinds[feature.name]) for feature in described.inputs]
    elif described.input_names == default_feature_names(len(described.inputs)):
        pairs = [(feature, column, kind) for feature, (column, kind) in zip(described.inputs, columns, strict=True)]
    else:
        raise InvalidSignature(
            f"the sample's columns {names} are not the features the model was fitted on "
            f"{described.input_names}; rename the sample's columns to match"
        )
    inputs = tuple(_feature(feature, column, kind) for feature, column, kind in pairs)
    return Signature(inputs, described.outputs, described.extra)


def _feature(described: Feature, name: str, kind: str) -> Feature:
    # Numbers and booleans become what the model says it takes (float64 unless it says otherwise).
    dtype = "string" if kind == "string" and described.dtype not in ("string", "category") else described.dtype
    return Feature(
        name,
        dtype,
        allow_missing=described.allow_missing and dtype not in ("int64", "int32", "bool"),
        categories=described.categories if dtype == "category" else None,
        shape=described.shape if dtype in NUMERIC_DTYPES else (),
    )


def _sample_columns(sample: object) -> list[tuple[str, str]]:
    """(column name, "number" | "string") for each column of a DataFrame, Arrow table or data file."""
    import pyarrow as pa

    schema = _sample_schema(sample)
    columns = []
    for field in schema:
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if any(
            test(kind) for test in (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean)
        ):
            columns.append((field.name, "number"))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            columns.append((field.name, "string"))
        else:
            raise InvalidSignature(
                f"sample column {field.name!r} holds {kind}; a signature takes numbers, booleans or strings"
                + ("; the column is empty, so its type is unknown" if pa.types.is_null(kind) else "")
            )
    return columns


def _sample_schema(sample: object) -> Any:
    import pyarrow as pa

    kind = type(sample)
    if kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame":
        try:
            return pa.Schema.from_pandas(sample, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidSignature(f"cannot read the sample DataFrame's column types: {exc}") from exc
    if isinstance(sample, pa.Table | pa.RecordBatch):
        return sample.schema
    if isinstance(sample, str | Path):
        return _file_schema(Path(sample))
    raise InvalidSignature(
        "sample= takes a pandas DataFrame, a pyarrow Table, or the path of a Parquet, CSV, JSON or JSON Lines "
        f"file; got {kind.__name__}"
    )


def _file_schema(path: Path) -> Any:
    import pyarrow as pa

    from foretell import formats

    if not path.is_file():
        raise InvalidSignature(f"sample file {path} does not exist")
    fmt = formats.SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidSignature(f"sample file {path.name}: expected a {', '.join(formats.SUFFIXES)} file")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(path)  # the footer only: no rows are read
        if fmt == "csv":
            import pyarrow.csv as pv

            # The streaming reader infers types from its first block, so a big file is not read whole.
            reader = pv.open_csv(path)
            try:
                return reader.schema
            finally:
                reader.close()
        rows = formats.read_file(path, fmt)
        return rows.schema if isinstance(rows, pa.Table) else formats.rows_table(rows, path.name).schema
    except (pa.ArrowInvalid, OSError, InvalidInput) as exc:
        raise InvalidSignature(f"cannot read the sample file {path}: {exc}") from exc
