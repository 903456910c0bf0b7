"""The one seam between a batch job and whatever runs its chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pyarrow as pa

from foretell.batch.manifest import ChunkRecord
from foretell.batch.scoring import ScoringSpec


class Engine(Protocol):
    """Scores chunks with `score_chunk` and yields a record for each committed chunk, in any order."""

    name: str

    def run(self, spec: ScoringSpec, chunks: Iterator[tuple[int, pa.RecordBatch]]) -> Iterator[ChunkRecord]: ...
