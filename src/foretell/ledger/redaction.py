"""Policy applied to rows: redaction (a keyed hash in place of a value) and sampling (deterministic by key).

Every writer of one ledger hashes with the same key (`<ledger>/_redact.key`), and the
same value's text is the same from any writer, so a redacted value can still be matched
(the same e-mail gives the same hash everywhere) but not read.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["Redactor", "keep_mask", "redacted", "redactor"]

Redactor = Callable[[bytes], str]
"""A keyed hash of one value's text (`redactor(key)`), as 32 hex digits."""


def redactor(key: bytes) -> Redactor:
    def digest(value: bytes) -> str:
        return hmac.new(key, value, hashlib.sha256).hexdigest()[:32]

    return digest


def redacted(array: pa.Array, redact: Redactor) -> pa.Array:
    """Each distinct value's text, hashed once; null stays null."""
    values = array.to_pylist()
    digests: dict[Any, str] = {}
    out: list[str | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        marker = (type(value).__name__, value if not isinstance(value, list) else tuple(value))
        found = digests.get(marker)
        if found is None:
            found = digests[marker] = redact(_text(value).encode())
        out.append(found)
    return pa.array(out, type=pa.string())


def _text(value: Any) -> str:
    """A value as text for hashing: the same value hashes the same from any writer."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


def keep_mask(table: pa.Table, fraction: float) -> np.ndarray:
    """Rows a sample of `fraction` keeps: a stable hash of the key (or the prediction id) into 10,000 buckets."""
    keys = table.column("key").to_pylist()
    ids = table.column("prediction_id").to_pylist()
    threshold = fraction * 10_000
    buckets = [zlib.crc32((k if k is not None else i).encode()) % 10_000 for k, i in zip(keys, ids, strict=True)]
    return np.array(buckets) < threshold
