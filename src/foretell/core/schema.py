"""`Signature`: what a model takes and what it gives, recorded at registration.

The signature is the contract every input form is checked against before a model sees
it (`Signature.coerce`), and the description servers publish as model metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from foretell.errors import InvalidSignature

if TYPE_CHECKING:
    from foretell.core.coerce import Columns

ExtraPolicy = Literal["reject", "ignore"]

#: Feature dtypes. `category` takes one of a fixed list of strings (or its integer
#: code) and reaches the model as a float code, which is how tree ensembles take
#: categorical splits.
FEATURE_DTYPES = ("float64", "float32", "int64", "int32", "bool", "string", "category")
NUMERIC_DTYPES = frozenset({"float64", "float32", "int64", "int32"})

#: Output kinds: one float per row (`score`), one class per row (`label`), one
#: probability per class (`proba`), or the k best items with their scores (`topk_*`).
OUTPUT_KINDS = ("score", "label", "proba", "topk_items", "topk_scores", "value")
OUTPUT_DTYPES = ("float64", "float32", "int64", "int32", "bool", "string")

Label = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Feature:
    """One named model input.

    `shape` is the shape of one row's value: `()` for a scalar, `(k,)` for a vector.
    `allow_missing` says the model accepts NaN/None for this feature (tree ensembles
    do; a logistic regression does not). `required=False` (which needs `allow_missing`)
    lets an input leave the feature out altogether, a column or key or tensor that is
    simply not there, and every row then has it missing: for context a model can use when
    it has it (a user's latest ratings), never for a feature whose absence is a mistake.
    """

    name: str
    dtype: str = "float64"
    allow_missing: bool = False
    categories: tuple[str, ...] | None = None
    shape: tuple[int, ...] = ()
    required: bool = True

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise InvalidSignature(f"a feature needs a non-empty string name, got {self.name!r}")
        if self.dtype not in FEATURE_DTYPES:
            raise InvalidSignature(
                f"feature {self.name!r}: dtype must be one of {', '.join(FEATURE_DTYPES)}; got {self.dtype!r}"
            )
        if self.dtype == "category":
            if not self.categories:
                raise InvalidSignature(f"feature {self.name!r}: a category feature needs its categories")
            if len(set(self.categories)) != len(self.categories):
                raise InvalidSignature(f"feature {self.name!r}: categories repeat: {list(self.categories)}")
        elif self.categories is not None:
            raise InvalidSignature(f"feature {self.name!r}: categories are only for dtype 'category'")
        if self.allow_missing and self.dtype in ("int64", "int32", "bool"):
            raise InvalidSignature(f"feature {self.name!r}: dtype {self.dtype} cannot hold missing values; use float64")
        if any(not isinstance(d, int) or d < 1 for d in self.shape):
            raise InvalidSignature(f"feature {self.name!r}: shape must be positive integers, got {self.shape}")
        if self.shape and self.dtype not in NUMERIC_DTYPES:
            raise InvalidSignature(f"feature {self.name!r}: only numeric features can have a shape")
        if not self.required and not self.allow_missing:
            raise InvalidSignature(
                f"feature {self.name!r}: an optional feature (required=false) must allow missing values"
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype}
        if self.allow_missing:
            out["allow_missing"] = True
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.shape:
            out["shape"] = list(self.shape)
        if not self.required:
            out["required"] = False
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        _check_keys("feature", data, {"name", "dtype", "allow_missing", "categories", "shape", "required"})
        categories = data.get("categories")
        return cls(
            name=data.get("name", ""),
            dtype=data.get("dtype", "float64"),
            allow_missing=bool(data.get("allow_missing", False)),
            categories=tuple(categories) if categories is not None else None,
            shape=tuple(data.get("shape", ())),
            required=bool(data.get("required", True)),
        )


@dataclass(frozen=True, slots=True)
class Output:
    """One named model output. `classes` orders a `proba` output's columns."""

    name: str
    kind: str
    dtype: str = "float64"
    shape: tuple[int, ...] = ()
    classes: tuple[Label, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in OUTPUT_KINDS:
            raise InvalidSignature(
                f"output {self.name!r}: kind must be one of {', '.join(OUTPUT_KINDS)}; got {self.kind!r}"
            )
        if self.dtype not in OUTPUT_DTYPES:
            raise InvalidSignature(
                f"output {self.name!r}: dtype must be one of {', '.join(OUTPUT_DTYPES)}; got {self.dtype!r}"
            )
        if self.kind == "proba" and (not self.classes or self.shape != (len(self.classes),)):
            raise InvalidSignature(f"output {self.name!r}: a proba output needs classes and shape (n_classes,)")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype}
        if self.shape:
            out["shape"] = list(self.shape)
        if self.classes is not None:
            out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Output:
        _check_keys("output", data, {"name", "kind", "dtype", "shape", "classes"})
        classes = data.get("classes")
        return cls(
            name=data.get("name", ""),
            kind=data.get("kind", ""),
            dtype=data.get("dtype", "float64"),
            shape=tuple(data.get("shape", ())),
            classes=tuple(classes) if classes is not None else None,
        )


@dataclass(frozen=True)
class Signature:
    """The inputs a model takes, in order, and the outputs it gives."""

    inputs: tuple[Feature, ...]
    outputs: tuple[Output, ...]
    extra: ExtraPolicy = "reject"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    #: Compiled by `foretell.core.coerce` on first use: per-feature converters and lookups.
    _plan: Any = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not self.inputs:
            raise InvalidSignature("a signature needs at least one input feature")
        if not self.outputs:
            raise InvalidSignature("a signature needs at least one output")
        for what, names in (("input", self.input_names), ("output", self.output_names)):
            seen: set[str] = set()
            dupes = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
            if dupes:
                raise InvalidSignature(f"{what} names repeat: {sorted(set(dupes))}")
        if self.extra not in ("reject", "ignore"):
            raise InvalidSignature(f"extra must be 'reject' or 'ignore', got {self.extra!r}")
        object.__setattr__(self, "_index", {f.name: i for i, f in enumerate(self.inputs)})

    @property
    def input_names(self) -> list[str]:
        return [f.name for f in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def is_float_matrix(self) -> bool:
        """True when every feature becomes one float64 per row, so rows fit one 2-D float array."""
        return all(not f.shape and f.dtype in ("float64", "category") for f in self.inputs)

    def feature(self, name: str) -> Feature:
        return self.inputs[self._index[name]]

    def output(self, name: str) -> Output:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(name)

    def coerce(self, data: object, *, extra: ExtraPolicy | None = None) -> Columns:
        """Turn any accepted input form into validated columns plus the rows refused, with reasons.

        One input (a dict, a 1-D array, a scalar for a one-feature model) is one row; a
        list of such, a pandas DataFrame, a pyarrow Table or RecordBatch, or a 2-D numpy
        array (columns in signature order) is many. Structural problems (a missing
        column, a 2-D array of the wrong width) raise `InvalidInput`; problems with
        individual values are returned per row, so a batch can keep its good rows.
        """
        from foretell.core.coerce import coerce_input

        if extra is not None and extra not in ("reject", "ignore"):
            from foretell.errors import InvalidInput

            raise InvalidInput(f"extra must be 'reject' or 'ignore'; got {extra!r}")
        return coerce_input(self, data, extra or self.extra)

    def with_extra(self, extra: ExtraPolicy) -> Signature:
        return Signature(self.inputs, self.outputs, extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [f.to_dict() for f in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        if not isinstance(data, Mapping):
            raise InvalidSignature(f"a signature is a JSON object, got {type(data).__name__}")
        _check_keys("signature", data, {"inputs", "outputs", "extra"})
        inputs = data.get("inputs")
        outputs = data.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            raise InvalidSignature("a signature needs 'inputs' and 'outputs' lists")
        return cls(
            inputs=tuple(Feature.from_dict(f) for f in inputs),
            outputs=tuple(Output.from_dict(o) for o in outputs),
            extra=data.get("extra", "reject"),
        )


def _check_keys(what: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    if not isinstance(data, Mapping):
        raise InvalidSignature(f"a {what} is a JSON object, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise InvalidSignature(f"unknown {what} keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def numeric_features(names: Sequence[str], *, allow_missing: bool = False) -> tuple[Feature, ...]:
    """float64 features with the given names: what most tabular models take."""
    return tuple(Feature(name, "float64", allow_missing=allow_missing) for name in names)


def default_feature_names(n: int) -> list[str]:
    """`f0`, `f1`, ... as XGBoost and ONNX converters name the columns of a bare array."""
    return [f"f{i}" for i in range(n)]
