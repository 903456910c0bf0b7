"""`Signature`: what a model takes and what it gives, recorded at registration.

The signature is the contract every input form is checked against before a model sees
it (`Signature.coerce`), and the description servers publish as model metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from foretell.core.coerce import ExtraPolicy, coerce_input
from foretell.core.columns import Columns
from foretell.core.domain import Domain
from foretell.core.feature import Feature, check_keys, fits_float_matrix
from foretell.errors import InvalidInput, InvalidSignature

#: Output kinds: one float per row (`score`), one class per row (`label`), one
#: probability per class (`proba`), or the k best items with their scores (`topk_*`).
OUTPUT_KINDS = ("score", "label", "proba", "topk_items", "topk_scores", "value")
OUTPUT_DTYPES = ("float64", "float32", "int64", "int32", "bool", "string")

Label = str | int | float | bool


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
        check_keys("output", data, {"name", "kind", "dtype", "shape", "classes"})
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
        return fits_float_matrix(self.inputs)

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
        if extra is not None and extra not in ("reject", "ignore"):
            raise InvalidInput(f"extra must be 'reject' or 'ignore'; got {extra!r}")
        return coerce_input(self, data, extra or self.extra)

    def with_extra(self, extra: ExtraPolicy) -> Signature:
        return Signature(self.inputs, self.outputs, extra)

    def with_domains(self, domains: Mapping[str, Domain]) -> Signature:
        """This signature with the given features' domains set (replacing any they had); others kept as they are."""
        if unknown := sorted(set(domains) - set(self._index)):
            raise InvalidSignature(f"no input feature(s) {unknown} to give a domain; the inputs: {self.input_names}")
        inputs = tuple(f.with_domain(domains[f.name]) if f.name in domains else f for f in self.inputs)
        return Signature(inputs, self.outputs, self.extra)

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
        check_keys("signature", data, {"inputs", "outputs", "extra"})
        inputs = data.get("inputs")
        outputs = data.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            raise InvalidSignature("a signature needs 'inputs' and 'outputs' lists")
        return cls(
            inputs=tuple(Feature.from_dict(f) for f in inputs),
            outputs=tuple(Output.from_dict(o) for o in outputs),
            extra=data.get("extra", "reject"),
        )


def numeric_features(names: Sequence[str], *, allow_missing: bool = False) -> tuple[Feature, ...]:
    """float64 features with the given names: what most tabular models take."""
    return tuple(Feature(name, "float64", allow_missing=allow_missing) for name in names)


def default_feature_names(n: int) -> list[str]:
    """`f0`, `f1`, ... as XGBoost and ONNX converters name the columns of a bare array."""
    return [f"f{i}" for i in range(n)]
