"""Pure domain: the batch type, signatures, coercion and the prediction contract. No I/O here."""

from foretell.core.columns import Columns
from foretell.core.feature import Feature
from foretell.core.frame import Frame
from foretell.core.model import Model, ModelInfo, PredictorChoice
from foretell.core.predictor import LoadedModel, Predictions, PredictOptions, Predictor
from foretell.core.schema import Output, Signature

__all__ = [
    "Columns",
    "Feature",
    "Frame",
    "LoadedModel",
    "Model",
    "ModelInfo",
    "Output",
    "PredictOptions",
    "Predictions",
    "Predictor",
    "PredictorChoice",
    "Signature",
]
