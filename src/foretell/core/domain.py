"""`Domain`: the values a feature or an entity column may take, beyond its type.

A type says `rating` is a number; a domain says it is a number from 1 to 5. Two kinds:

- a range, `min` and/or `max`, both inclusive, either side open (`1:5`, `0:`, `:120`);
- an allowed set of numbers or of strings (`1,2,3`, `basic,pro`).

A missing value (None, NaN) is never outside a domain: whether a value may be missing is
the feature's own rule (`allow_missing`), judged before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from foretell.errors import InvalidSignature

__all__ = ["Domain", "parse_domain_option"]

Allowed = tuple[float, ...] | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Domain:
    """A range (`minimum`/`maximum`, inclusive, None = open) or an allowed set (`allowed`), never both."""

    minimum: float | None = None
    maximum: float | None = None
    allowed: Allowed | None = None

    def __post_init__(self) -> None:
        for side, bound in (("min", self.minimum), ("max", self.maximum)):
            if bound is not None and (_not_number(bound) or not math.isfinite(bound)):
                raise InvalidSignature(f"a domain's {side} must be a finite number, got {bound!r}")
        if self.allowed is not None:
            if self.minimum is not None or self.maximum is not None:
                raise InvalidSignature("a domain is a range (min, max) or a set of allowed values, not both")
            if not self.allowed:
                raise InvalidSignature("a domain's allowed values cannot be empty")
            texts = all(isinstance(v, str) for v in self.allowed)
            if not texts and any(_not_number(v) or not math.isfinite(v) for v in self.allowed):  # type: ignore[arg-type]
                raise InvalidSignature(
                    f"a domain's allowed values are all finite numbers or all strings, got {list(self.allowed)}"
                )
            if len(set(self.allowed)) != len(self.allowed):
                raise InvalidSignature(f"a domain's allowed values repeat: {list(self.allowed)}")
        elif self.minimum is None and self.maximum is None:
            raise InvalidSignature("a domain needs a min, a max or its allowed values")
        elif self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise InvalidSignature(f"a domain's min {self.minimum:g} is above its max {self.maximum:g}")

    @property
    def is_text(self) -> bool:
        """An allowed set of strings (for string features), rather than of numbers or a range."""
        return self.allowed is not None and isinstance(self.allowed[0], str)

    def __str__(self) -> str:
        """The option's form: `1:5`, `0:`, `:120`, `1,2,3`."""
        if self.allowed is not None:
            return ",".join(v if isinstance(v, str) else _number(v) for v in self.allowed)
        low = "" if self.minimum is None else _number(self.minimum)
        high = "" if self.maximum is None else _number(self.maximum)
        return f"{low}:{high}"

    def to_dict(self) -> dict[str, Any]:
        if self.allowed is not None:
            return {"values": [v if isinstance(v, str) else _plain(v) for v in self.allowed]}
        bounds = {"min": self.minimum, "max": self.maximum}
        return {side: _plain(bound) for side, bound in bounds.items() if bound is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Domain:
        """The JSON form (`{"min": 1, "max": 5}`, `{"values": [...]}`) or the option's text (`"1:5"`)."""
        if isinstance(data, str):
            return parse_domain(data)
        if not isinstance(data, Mapping):
            raise InvalidSignature(f"a domain is an object with min/max or values, or text like '1:5'; got {data!r}")
        unknown = set(data) - {"min", "max", "values"}
        if unknown:
            raise InvalidSignature(f"unknown domain keys {sorted(unknown)}; allowed: ['max', 'min', 'values']")
        values = data.get("values")
        if values is not None and not isinstance(values, list):
            raise InvalidSignature(f"a domain's values are a list, got {values!r}")
        return cls(data.get("min"), data.get("max"), None if values is None else _allowed(values))

    def refusal(self, value: Any) -> str | None:
        """Why one present value is outside the domain (naming the bound), or None when it is inside."""
        if value is None or (isinstance(value, float) and value != value):
            return None
        if self.allowed is not None:
            if self.is_text:
                inside = isinstance(value, str) and value in self.allowed
            else:
                inside = not _not_number(value) and value in self.allowed
            return None if inside else f"not one of its domain's allowed values {{{self}}}"
        if _not_number(value):
            return f"not a number, and its domain is the range {self}"
        if self.minimum is not None and value < self.minimum:
            return f"below its domain's minimum {_number(self.minimum)} (domain {self})"
        if self.maximum is not None and value > self.maximum:
            return f"above its domain's maximum {_number(self.maximum)} (domain {self})"
        return None

    def outside(self, column: np.ndarray) -> np.ndarray:
        """A mask of the column's values outside the domain, vectorized; missing values are never outside."""
        if self.allowed is not None:
            if self.is_text:
                allowed = frozenset(self.allowed)
                return np.fromiter((v is not None and v not in allowed for v in column.tolist()), bool, len(column))
            # NaN is not in any set of finite numbers, and is missing, not outside.
            absent: np.ndarray = ~np.isin(column, np.asarray(self.allowed, dtype=np.float64)) & ~_nan(column)
            return absent
        outside = np.zeros(len(column), dtype=bool)
        if self.minimum is not None:
            outside |= column < self.minimum
        if self.maximum is not None:
            outside |= column > self.maximum
        return outside


def parse_domain(text: str) -> Domain:
    """`1:5`, `0:`, `:120` (a range) or `1,2,3`, `basic,pro` (an allowed set); `InvalidSignature` naming the form."""
    spec = text.strip()
    if ":" in spec:
        low, _, high = spec.partition(":")
        try:
            bounds = _bound(low), _bound(high)
        except ValueError:
            pass
        else:
            return Domain(*bounds)
    elif spec:
        return Domain(allowed=_allowed([part.strip() for part in spec.split(",")], parse=True))
    raise InvalidSignature(
        f"cannot read the domain {text!r}: expected MIN:MAX (numbers, either side may be empty, e.g. 1:5 or 0:) "
        "or allowed values a,b,c"
    )


def parse_domain_option(option: str) -> tuple[str, Domain]:
    """`NAME=1:5` or `NAME=a,b,c` (a `--domain` option) → (NAME, its domain)."""
    name, equals, spec = option.partition("=")
    if not equals or not name.strip():
        raise InvalidSignature(
            f"cannot read --domain {option!r}: expected NAME=MIN:MAX (e.g. rating=1:5, tenure_months=0:) "
            "or NAME=a,b,c (e.g. plan=basic,pro)"
        )
    try:
        return name.strip(), parse_domain(spec)
    except InvalidSignature as exc:
        raise InvalidSignature(f"--domain {option!r}: {exc}") from None


def _bound(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    number = float(text)  # ValueError for text that is not a number: the caller names the form
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def _allowed(values: list[Any], *, parse: bool = False) -> Allowed:
    """Allowed values as given, or (`parse`: from an option's text) as numbers when every one reads as a number."""
    if any(isinstance(v, bool) for v in values):
        raise InvalidSignature(f"a domain's allowed values are numbers or strings, not true/false: {values}")
    if parse:
        try:
            numbers = tuple(float(v) for v in values)
        except ValueError:
            return tuple(str(v) for v in values)
        return numbers if all(math.isfinite(n) for n in numbers) else tuple(str(v) for v in values)
    if all(isinstance(v, str) for v in values):
        return tuple(values)
    return tuple(float(v) if isinstance(v, int | float) else v for v in values)


def _not_number(value: Any) -> bool:
    return isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating)


def _nan(column: np.ndarray) -> np.ndarray:
    return np.isnan(column) if column.dtype.kind == "f" else np.zeros(len(column), dtype=bool)


def _number(value: float) -> str:
    """A bound as a person writes it: 5, not 5.0; 0.25 as it is."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)
