"""foretell: one registered model, served as batch, real-time and hybrid predictions.

import foretell
model = foretell.load("churn@production")
model.predict({"tenure_months": 3, ...})          # one input → one row of outputs
model.predict_batch(dataframe)                      # many inputs, one vectorized call
"""

from typing import TYPE_CHECKING, Any

from foretell import errors
from foretell.errors import (
    ArtifactIntegrityError,
    ForetellError,
    InvalidInput,
    InvalidModelURI,
    MissingExtra,
    ModelNotFound,
    PredictionError,
)

if TYPE_CHECKING:
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

    __version__: str

# Imported on first use, not with the package: `import foretell.cli` (every `foretell` command)
# starts here, and a command that never touches a model must not pay for numpy and the compilers.
_LAZY = {
    **dict.fromkeys(
        (
            "batch_job",
            "batch_jobs",
            "compile_model",
            "delete_version",
            "demo_init",
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
        ),
        "foretell.api",
    ),
    **dict.fromkeys(
        ("Columns", "Feature", "Frame", "Model", "ModelInfo", "Output", "Predictions", "PredictorChoice", "Signature"),
        "foretell.core",
    ),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("foretell")
        except PackageNotFoundError:  # running from a source tree that was never installed
            found = "0+unknown"
    elif name in _LAZY:
        from importlib import import_module

        found = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'foretell' has no attribute {name!r}")
    globals()[name] = found  # looked up once: the next access is a plain attribute
    return found


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
