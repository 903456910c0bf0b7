"""`Feature`: one named model input, and the dtypes a feature may have.

Apart from `schema` because coercion reads features and `Signature.coerce` calls
coercion: the chain runs feature → values/columns/coerce → schema, with no way back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from foretell.core.domain import Domain
from foretell.errors import InvalidSignature

__all__ = ["FEATURE_DTYPES", "NUMERIC_DTYPES", "Feature", "check_keys", "fits_float_matrix"]

#: Feature dtypes. `category` takes one of a fixed list of strings (or its integer
#: code) and reaches the model as a float code, which is how tree ensembles take
#: categorical splits.
FEATURE_DTYPES = ("float64", "float32", "int64", "int32", "bool", "string", "category")
NUMERIC_DTYPES = frozenset({"float64", "float32", "int64", "int32"})


@dataclass(frozen=True, slots=True)
class Feature:
    """One named model input.

    `shape` is the shape of one row's value: `()` for a scalar, `(k,)` for a vector.
    `allow_missing` says the model accepts NaN/None for this feature (tree ensembles
    do; a logistic regression does not). `required=False` (which needs `allow_missing`)
    lets an input leave the feature out altogether, a column or key or tensor that is
    simply not there, and every row then has it missing: for context a model can use when
    it has it (a user's latest ratings), never for a feature whose absence is a mistake.
    `domain` narrows a scalar number (a range or allowed numbers) or string (allowed
    strings) to the values that make sense; a category's categories are its domain already.
    """

    name: str
    dtype: str = "float64"
    allow_missing: bool = False
    categories: tuple[str, ...] | None = None
    shape: tuple[int, ...] = ()
    required: bool = True
    domain: Domain | None = None

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
        if self.domain is not None:
            _check_domain(self)

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
        if self.domain is not None:
            out["domain"] = self.domain.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        check_keys("feature", data, {"name", "dtype", "allow_missing", "categories", "shape", "required", "domain"})
        categories = data.get("categories")
        domain = data.get("domain")
        return cls(
            name=data.get("name", ""),
            dtype=data.get("dtype", "float64"),
            allow_missing=bool(data.get("allow_missing", False)),
            categories=tuple(categories) if categories is not None else None,
            shape=tuple(data.get("shape", ())),
            required=bool(data.get("required", True)),
            domain=None if domain is None else _domain_of(data.get("name"), domain),
        )

    def with_domain(self, domain: Domain | None) -> Feature:
        return Feature(self.name, self.dtype, self.allow_missing, self.categories, self.shape, self.required, domain)


def _domain_of(name: object, data: Any) -> Domain:
    try:
        return Domain.from_dict(data)
    except InvalidSignature as exc:
        raise InvalidSignature(f"feature {name!r}: {exc}") from None


def _check_domain(feature: Feature) -> None:
    """Refuse a domain the feature's values could never be judged by, saying what fits instead."""
    domain = feature.domain
    assert domain is not None
    if feature.dtype == "category":
        raise InvalidSignature(
            f"feature {feature.name!r}: a category's categories are its allowed values already; "
            "list only the ones it takes in its categories"
        )
    if feature.dtype == "bool" or feature.shape:
        raise InvalidSignature(
            f"feature {feature.name!r}: domains are for scalar numbers and strings, not "
            + ("true/false" if feature.dtype == "bool" else f"vectors of shape {list(feature.shape)}")
        )
    if feature.dtype == "string" and not domain.is_text:
        raise InvalidSignature(
            f"feature {feature.name!r} holds strings: its domain is a set of allowed strings (a,b,c), not {domain}"
        )
    if feature.dtype in NUMERIC_DTYPES and domain.is_text:
        raise InvalidSignature(
            f"feature {feature.name!r} holds numbers ({feature.dtype}): its domain is a range (MIN:MAX) "
            f"or allowed numbers, not the strings {domain}"
        )


def fits_float_matrix(features: Iterable[Feature]) -> bool:
    """True when every feature becomes one float64 per row, so rows fit one 2-D float array."""
    return all(not f.shape and f.dtype in ("float64", "category") for f in features)


def check_keys(what: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse a JSON object for a feature, output or signature that is not one, or that has keys it does not know."""
    if not isinstance(data, Mapping):
        raise InvalidSignature(f"a {what} is a JSON object, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise InvalidSignature(f"unknown {what} keys {sorted(unknown)}; allowed: {sorted(allowed)}")
