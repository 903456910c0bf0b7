"""Where chunks are scored. `local` uses this machine's cores; a distributed engine plugs in beside it."""

from foretell.batch.engines.base import Chunks, Engine
from foretell.batch.engines.local import LocalEngine

__all__ = ["Chunks", "Engine", "LocalEngine"]
