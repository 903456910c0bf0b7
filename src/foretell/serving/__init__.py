"""The online path, transport-agnostic: the inference service, the served models and their micro-batchers."""

from foretell.serving.batcher import BatchObserver, MicroBatcher
from foretell.serving.policy import BatchPolicy

__all__ = ["BatchObserver", "BatchPolicy", "MicroBatcher"]
