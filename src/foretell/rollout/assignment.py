"""Which arm answers a request: deterministic, so a customer always meets one version.

The unit a request is assigned by is its entity key when it has one (a lookup, an event,
an infer naming `parameters.key`), else the client's request id, else a digest of its
input. The unit and the rollout's id are hashed (BLAKE2b, the same in every process and
across restarts, unlike Python's `hash`) into one of 10,000 buckets; the first
`percent × 100` go to the challenger. So the share is exact to 0.01 % over many units,
and the same unit gets the same arm on every worker and after a restart.
"""

from __future__ import annotations

from hashlib import blake2b

import numpy as np

from foretell.core.frame import Frame
from foretell.rollout.divergence import Arm

__all__ = ["BUCKETS", "arm_for", "bucket_of", "digest_of_frame"]

BUCKETS = 10_000


def bucket_of(salt: str, unit: str | bytes) -> int:
    data = unit.encode() if isinstance(unit, str) else unit
    digest = blake2b(data, digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def arm_for(salt: str, unit: str | bytes, percent: float) -> Arm:
    """The challenger for `percent` % of units, the champion for the rest."""
    return "challenger" if bucket_of(salt, unit) < round(percent * (BUCKETS // 100)) else "champion"


def digest_of_frame(frame: Frame) -> bytes:
    """A request's input as bytes to assign it by, when it has no key and no id: the same rows, the same bytes."""
    hasher = blake2b(digest_size=16)
    for values in frame.values():
        column = np.ascontiguousarray(values)
        if column.dtype == object:
            hasher.update(repr(column.tolist()).encode())
        else:
            hasher.update(column.tobytes())
    return hasher.digest()
