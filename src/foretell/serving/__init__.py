"""The online path, transport-agnostic: micro-batching now; model slots and the data plane join it later."""

from foretell.serving.batcher import BatchObserver, MicroBatcher
from foretell.serving.policy import BatchPolicy

__all__ = ["BatchObserver", "BatchPolicy", "MicroBatcher"]
