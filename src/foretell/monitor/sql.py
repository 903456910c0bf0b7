"""SQL pieces the monitor's sections share: quoting, and what a view's struct columns hold.

The ledger session's views unify segments by name, so which `inputs` and `outputs` fields
exist depends on what was recorded in the window (a model whose inputs were never recorded
has an `inputs` column of type NULL). Each section asks before it names a field.
"""

# ruff: noqa: S608 - names are quoted by `ident`

from __future__ import annotations

from typing import TYPE_CHECKING

from foretell.errors import StoreError
from foretell.ledger.sql import from_micros, ident

if TYPE_CHECKING:
    from foretell.ledger.session import LedgerSession

__all__ = ["columns", "fields", "ident", "is_numeric", "iso", "iso_or_none"]


#: DuckDB types compared as numbers (as DOUBLE) when a live input meets the batch file's column.
NUMERIC_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
     "FLOAT", "DOUBLE", "DECIMAL"}
)  # fmt: skip


def fields(session: LedgerSession, view: str, column: str) -> dict[str, str]:
    """The fields of struct `column` of `view` and their DuckDB types; {} when it is no struct (nothing recorded)."""
    try:
        described = session.rows(f"DESCRIBE SELECT {ident(column)}.* FROM {ident(view)}")
    except StoreError:  # a NULL-typed column: no segment in the window recorded that struct
        return {}
    return {str(name): str(kind) for name, kind, *_ in described}


def columns(session: LedgerSession, view: str) -> dict[str, str]:
    """The columns of `view` and their DuckDB types."""
    return {str(name): str(kind) for name, kind, *_ in session.rows(f"DESCRIBE {ident(view)}")}


def is_numeric(kind: str) -> bool:
    return kind.split("(")[0] in NUMERIC_TYPES


def iso(micros: int) -> str:
    """An instant the queries return as `epoch_us(...)`, so the connection's time zone plays no part, as ISO UTC."""
    return from_micros(micros).isoformat()


def iso_or_none(micros: int | None) -> str | None:
    return None if micros is None else iso(micros)
