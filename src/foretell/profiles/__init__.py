"""Reference profiles of a model version's inputs and outputs, and drift against them (pure numpy + Arrow)."""

from foretell.profiles.drift import (
    FeatureDrift,
    Status,
    Thresholds,
    WindowedBins,
    categorical_drift,
    counted_drift,
    numeric_drift,
    psi,
)
from foretell.profiles.grids import CategoricalGrid, NumericGrid, grid_for
from foretell.profiles.reference import CategoricalProfile, NumericProfile, ReferenceProfile, build_profile

__all__ = [
    "CategoricalGrid",
    "CategoricalProfile",
    "FeatureDrift",
    "NumericGrid",
    "NumericProfile",
    "ReferenceProfile",
    "Status",
    "Thresholds",
    "WindowedBins",
    "build_profile",
    "categorical_drift",
    "counted_drift",
    "grid_for",
    "numeric_drift",
    "psi",
]
