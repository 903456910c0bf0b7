"""Model URIs as MLflow writes them, and the naming rules that keep them unambiguous.

`models:/churn/3`, `models:/churn@production`, `models:/churn/latest` and the
shorthands `churn/3`, `churn@production`, `churn`. Names never contain `/` or `@`
and aliases never look like a version, so every URI has exactly one reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from foretell.errors import InvalidModelURI, RegistryError

__all__ = [
    "ACCEPTED_FORMS",
    "ModelRef",
    "alias_problem",
    "check_alias",
    "check_model_name",
    "check_version",
    "name_problem",
    "parse_model_uri",
]

SCHEME = "models:/"
LATEST = "latest"
MAX_NAME_LENGTH = 128
#: SQLite stores versions as signed 64-bit integers; anything larger could never exist.
MAX_VERSION = 2**63 - 1
ACCEPTED_FORMS = "models:/name/3, models:/name@alias, models:/name/latest, models:/name, name, name/3, name@alias"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def name_problem(name: object) -> str | None:
    """Why `name` cannot name a model, or None when it can."""
    if not isinstance(name, str):
        return f"a model name is a string, got {type(name).__name__}"
    if len(name) > MAX_NAME_LENGTH:
        return f"a model name has at most {MAX_NAME_LENGTH} characters, got {len(name)}"
    if not _NAME.fullmatch(name):
        return (
            f"a model name starts with a letter or digit and holds only letters, digits, '_', '.' and '-'; got {name!r}"
        )
    return None


def alias_problem(alias: object) -> str | None:
    """Why `alias` cannot name an alias, or None when it can."""
    if not isinstance(alias, str):
        return f"an alias is a string, got {type(alias).__name__}"
    if alias == LATEST:
        return "'latest' always means the newest version and cannot be an alias; use name/latest"
    if len(alias) > MAX_NAME_LENGTH:
        return f"an alias has at most {MAX_NAME_LENGTH} characters, got {len(alias)}"
    if not _ALIAS.fullmatch(alias):
        # An all-digit alias would read as a version number, hence the leading letter.
        return f"an alias starts with a letter and holds only letters, digits, '_' and '-'; got {alias!r}"
    return None


def _version_problem(version: object) -> str | None:
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        return f"a version is a whole number from 1 up, got {version!r}"
    return None


def check_model_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise RegistryError(problem)
    return name


def check_alias(alias: str) -> str:
    problem = alias_problem(alias)
    if problem:
        raise RegistryError(problem)
    return alias


def check_version(version: int) -> int:
    problem = _version_problem(version)
    if problem:
        raise RegistryError(problem)
    return version


@dataclass(frozen=True, slots=True)
class ModelRef:
    """What a URI names: one version, one alias, or (neither set) the newest version."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if self.version is not None and self.alias is not None:
            raise RegistryError(f"a model reference names a version or an alias, not both: {self.name!r}")
        if self.version is not None:
            check_version(self.version)
        if self.alias is not None:
            check_alias(self.alias)

    @property
    def uri(self) -> str:
        """The canonical `models:/` form, which `parse_model_uri` reads back to an equal ref."""
        if self.alias is not None:
            return f"{SCHEME}{self.name}@{self.alias}"
        return f"{SCHEME}{self.name}/{LATEST if self.version is None else self.version}"

    def __str__(self) -> str:
        return self.uri


def parse_model_uri(text: str) -> ModelRef:
    """Read any accepted URI form; anything else raises `InvalidModelURI` listing the forms."""
    if not isinstance(text, str):
        raise InvalidModelURI(f"a model URI is a string, got {type(text).__name__}; accepted forms: {ACCEPTED_FORMS}")
    body = text.removeprefix(SCHEME)
    if "@" in body:
        name, alias = body.split("@", 1)
        if alias == LATEST:
            _refuse(text, f"'latest' is not an alias; write {SCHEME}{name}/latest")
        _check(text, name_problem(name) or alias_problem(alias))
        return ModelRef(name, alias=alias)
    if "/" in body:
        name, tail = body.split("/", 1)
        _check(text, name_problem(name))
        if tail == LATEST:
            return ModelRef(name)
        if not (tail.isascii() and tail.isdigit()):
            _refuse(text, f"after '/' comes a version number or 'latest', got {tail!r}")
        # Bounded before int(): Python refuses to parse more than 4300 digits with a ValueError.
        digits = tail.lstrip("0")
        if len(digits) > len(str(MAX_VERSION)):
            _refuse(text, f"version {tail} is larger than any version can be")
        version = int(tail)
        _check(text, _version_problem(version))
        return ModelRef(name, version=version)
    _check(text, name_problem(body))
    return ModelRef(body)


def _check(text: str, problem: str | None) -> None:
    if problem:
        _refuse(text, problem)


def _refuse(text: str, reason: str) -> NoReturn:
    raise InvalidModelURI(f"{text!r} is not a model URI: {reason}. Accepted forms: {ACCEPTED_FORMS}")
