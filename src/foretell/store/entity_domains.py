"""Domains of an entity table's columns: declared at load, checked on the file's rows and on every event.

A features table may give any feature column a domain (`support_calls_30d=0:`); an
interactions table gives one to its value column (`rating=1:5`). A load whose file holds
a value outside them is refused whole, naming the first such row; an event outside them is
refused before anything is written (`check_write`), with the bound in the message. A null
(a missing value) is never outside a domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from foretell.core.domain import Domain
from foretell.errors import InvalidInput

__all__ = ["check_rows", "check_value", "domains_from_dict", "table_domains"]


def table_domains(
    name: str, columns: Iterable[str], key_column: str, domains: Mapping[str, Domain] | None
) -> dict[str, Domain]:
    """`domains` checked against the columns they may name: any feature column but the key."""
    found = dict(domains or {})
    allowed = [column for column in columns if column != key_column]
    if key_column in found:
        raise InvalidInput(f"{key_column!r} is the key of entity table {name!r}: a key has no domain")
    if unknown := sorted(set(found) - set(allowed)):
        raise InvalidInput(f"entity table {name!r} has no column(s) {unknown} to give a domain; its columns: {allowed}")
    for column, domain in found.items():
        if not isinstance(domain, Domain):
            raise InvalidInput(f"the domain of {column!r} must be a Domain, got {type(domain).__name__}")
    return found


def domains_from_dict(data: Mapping[str, Any] | None) -> dict[str, Domain]:
    return {column: Domain.from_dict(spec) for column, spec in (data or {}).items()}


def check_rows(rows: pa.Table, domains: Mapping[str, Domain], table: str) -> None:
    """Refuse a load whose rows hold a value outside a column's domain, naming the first one."""
    for column, domain in domains.items():
        values = rows.column(column)
        kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
        numbers = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if domain.is_text or not numbers:
            items = values.to_pylist()
            outside = np.fromiter((domain.refusal(v) is not None for v in items), bool, len(items))
        else:
            outside = domain.outside(values.to_numpy(zero_copy_only=False).astype(np.float64))
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            value = values[row].as_py()
            raise InvalidInput(
                f"row {row}: column {column!r} of entity table {table!r} holds {value!r}, "
                f"{domain.refusal(value)}; {int(outside.sum()):,} row(s) in all: nothing was loaded"
            )


def check_value(domains: Mapping[str, Domain], column: str, value: Any, table: str) -> None:
    """Refuse an event's value for `column` outside its domain, naming column, bound and value."""
    domain = domains.get(column)
    if domain is None:
        return
    reason = domain.refusal(value)
    if reason is not None:
        raise InvalidInput(f"entity table {table!r}: {column!r} {value!r} is {reason}")
