"""The one seam between a batch job and whatever runs its chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from foretell.batch.manifest import ChunkRecord
from foretell.batch.scoring import ScoringSpec
from foretell.batch.sources import ChunkRef, Source


@dataclass(frozen=True)
class Chunks:
    """The chunks a job still has to score: read here (`batches`) or where they are scored (`refs`)."""

    source: Source
    chunk_rows: int
    done: frozenset[int] = frozenset()

    def batches(self) -> Iterator[tuple[int, pa.RecordBatch]]:
        return ((n, batch) for n, batch in self.source.chunks(self.chunk_rows) if n not in self.done)

    def refs(self) -> list[ChunkRef]:
        return [ref for ref in self.source.plan(self.chunk_rows) if ref.number not in self.done]


class Engine(Protocol):
    """Scores chunks with `score_chunk` and yields a record for each committed chunk, in any order."""

    name: str

    def run(self, spec: ScoringSpec, chunks: Chunks) -> Iterator[ChunkRecord]: ...
