"""`Model`: the object `foretell.load` returns, and `ModelInfo`, what the registry knows of it.

`Model.predict(x)` is `Model.predict_batch([x])[0]`: both go through `Signature.coerce`
and `Predictor.predict`, the same two steps a batch job and the server take, which is
what makes their answers the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from foretell.core.coerce import ExtraPolicy, describe_input
from foretell.core.columns import Columns
from foretell.core.frame import Frame
from foretell.core.predictor import Predictions, PredictOptions, Predictor
from foretell.core.schema import Signature
from foretell.errors import InvalidInput

__all__ = ["PREDICTOR_CHOICES", "Model", "ModelInfo", "PredictorChoice", "check_predictor_choice"]

PredictorChoice = Literal["auto", "original", "compiled"]
"""Which predictor answers for a version: `auto` (the compiled one when it passed its parity
proof, else the framework's own), `original` (the framework's own, always), or `compiled`
(the compiled one, or an error saying why there is none)."""

PREDICTOR_CHOICES: tuple[PredictorChoice, ...] = ("auto", "original", "compiled")


def check_predictor_choice(choice: str) -> PredictorChoice:
    """`choice` as a `PredictorChoice`; a text from the edge (a flag, a file) that is none of them is refused."""
    for known in PREDICTOR_CHOICES:
        if choice == known:
            return known
    raise InvalidInput(f"predictor must be one of {', '.join(PREDICTOR_CHOICES)}; got {choice!r}")


@dataclass(frozen=True)
class ModelInfo:
    """One registered model version, as the registry records it."""

    name: str
    version: int
    flavor: str
    signature: Signature
    sha256: str
    size_bytes: int
    created_at: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    framework_versions: Mapping[str, str] = field(default_factory=dict)
    flavor_options: Mapping[str, Any] = field(default_factory=dict)
    compiled: Mapping[str, Any] | None = None
    """The last compilation's outcome (`foretell models compile`): used or not, why, parity, speed-ups."""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def compiled_passed(self) -> bool:
        """Whether this version has a compiled predictor that passed its parity proof."""
        return (self.compiled or {}).get("status") == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "flavor": self.flavor,
            "aliases": list(self.aliases),
            "description": self.description,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "created_at": self.created_at,
            "framework_versions": dict(self.framework_versions),
            "metadata": dict(self.metadata),
            "flavor_options": dict(self.flavor_options),
            "signature": self.signature.to_dict(),
            "compiled": dict(self.compiled) if self.compiled is not None else None,
        }


def _is_row(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple | np.ndarray)


def _is_batch(xs: object) -> bool:
    kind = type(xs)
    if isinstance(xs, list | tuple):
        return True
    if isinstance(xs, np.ndarray):
        return xs.ndim == 2
    if kind is Frame:
        return True
    return kind.__module__.startswith(("pandas", "pyarrow")) and kind.__name__ in ("DataFrame", "Table", "RecordBatch")


class Model:
    """A registered model version, loaded and ready to predict."""

    __slots__ = ("info", "predictor", "variant")

    def __init__(self, info: ModelInfo, predictor: Predictor, variant: str = "original") -> None:
        self.info = info
        self.predictor = predictor
        self.variant = variant
        """Which predictor answers: `original` (the flavor's framework) or the compiler's name."""

    def __repr__(self) -> str:
        shown = self.info.flavor if self.variant == "original" else f"{self.info.flavor}, compiled with {self.variant}"
        return f"<Model {self.info.name}/{self.info.version} ({shown})>"

    @property
    def signature(self) -> Signature:
        return self.info.signature

    @property
    def releases_gil(self) -> bool:
        """Whether predicting runs in native code that lets other Python threads run meanwhile.

        Then one process can score on several threads; otherwise only processes give
        parallelism. Predictors opt in (`releases_gil = True` on the loaded model).
        """
        return bool(getattr(self.predictor.loaded, "releases_gil", False))

    def coerce(self, xs: object, *, extra: ExtraPolicy | None = None) -> Columns:
        """Validate a batch without predicting: the good rows as columns, the bad ones with reasons."""
        return self.signature.coerce(self._as_batch(xs), extra=extra)

    def predict_batch(self, xs: object, *, extra: ExtraPolicy | None = None, k: int | None = None) -> Predictions:
        """Predict many inputs in one vectorized call.

        `xs` is a list of inputs (dicts, value lists, or scalars for a one-feature model),
        a pandas DataFrame, a pyarrow Table/RecordBatch, or a 2-D numpy array. If any
        row is invalid, nothing is predicted and `InvalidInput` lists every bad row.
        """
        columns = self.coerce(xs, extra=extra)
        columns.raise_for_errors()
        return self.predictor.predict(columns.frame, _options(k))

    def predict_columns(self, columns: Columns, *, k: int | None = None) -> Predictions:
        """Predict the valid rows of an already coerced input (`Columns.rows` says which input rows they are)."""
        return self.predictor.predict(columns.frame, _options(k))

    def predict(self, x: object, *, extra: ExtraPolicy | None = None, k: int | None = None) -> dict[str, Any]:
        """Predict one input (a dict of features, a list of values, or a scalar); returns one row of outputs."""
        if _is_batch(x) and not (isinstance(x, list | tuple) and not any(_is_row(v) for v in x)):
            raise InvalidInput(
                f"predict takes one input; got {describe_input(x)}, which holds several. "
                "Use predict_batch for many inputs"
            )
        return self.predict_batch([x], extra=extra, k=k)[0]

    def _as_batch(self, xs: object) -> object:
        if _is_batch(xs):
            return xs
        if isinstance(xs, set | frozenset):
            raise InvalidInput("predict_batch got a set, which has no order to match answers to; pass a list")
        if isinstance(xs, range | Iterator):
            return list(xs)
        if isinstance(xs, np.ndarray) and xs.ndim == 1 and len(self.signature.inputs) == 1:
            return xs.reshape(-1, 1)
        text = repr(xs)
        x = text if len(text) <= 30 and not isinstance(xs, np.ndarray) else "x"
        raise InvalidInput(
            f"predict_batch expects a sequence of inputs (a list, a DataFrame, an Arrow table or a 2-D array); "
            f"got {describe_input(xs)}, which is a single input. "
            f"Use predict({x}) for one input, or wrap it in a list: predict_batch([{x}])"
        )


def _options(k: int | None) -> PredictOptions:
    if k is None:
        return PredictOptions()
    if type(k) is not int or k < 1:
        raise InvalidInput(f"k must be a positive whole number of items; got {k!r}")
    return PredictOptions(k=k)
