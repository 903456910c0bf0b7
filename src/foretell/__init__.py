"""foretell: one registered model, served as batch, real-time and hybrid predictions.

import foretell
model = foretell.load("churn@production")
model.predict({"tenure_months": 3, ...})          # one input → one row of outputs
model.predict_batch(dataframe)                      # many inputs, one vectorized call
"""

from importlib.metadata import PackageNotFoundError, version

from foretell import errors
from foretell.api import (
    batch_job,
    batch_jobs,
    compile_model,
    delete_version,
    demo_init,
    get_registry,
    list_models,
    list_versions,
    load,
    read_input,
    register,
    resume_batch,
    run_batch,
    set_alias,
    show,
)
from foretell.core import (
    Columns,
    Feature,
    Frame,
    Model,
    ModelInfo,
    Output,
    Predictions,
    PredictorChoice,
    Signature,
)
from foretell.errors import (
    ArtifactIntegrityError,
    ForetellError,
    InvalidInput,
    InvalidModelURI,
    MissingExtra,
    ModelNotFound,
    PredictionError,
)

try:
    __version__ = version("foretell")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ArtifactIntegrityError",
    "Columns",
    "Feature",
    "ForetellError",
    "Frame",
    "InvalidInput",
    "InvalidModelURI",
    "MissingExtra",
    "Model",
    "ModelInfo",
    "ModelNotFound",
    "Output",
    "PredictionError",
    "Predictions",
    "PredictorChoice",
    "Signature",
    "__version__",
    "batch_job",
    "batch_jobs",
    "compile_model",
    "delete_version",
    "demo_init",
    "errors",
    "get_registry",
    "list_models",
    "list_versions",
    "load",
    "read_input",
    "register",
    "resume_batch",
    "run_batch",
    "set_alias",
    "show",
]
