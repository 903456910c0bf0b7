"""One error tree: every error foretell raises on purpose is defined in `foretell.errors`.

Each class inherits the builtin a caller would reach for, so `except LookupError` or
`except ValueError` work for code that never heard of foretell; adding an error means
adding it here, with its builtin.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import foretell
from foretell import errors

# The builtin each error is also an instance of (its nearest one, where it has a parent of its own).
BUILTINS: dict[str, type[Exception]] = {
    "AliasNotFound": LookupError,
    "ArtifactIntegrityError": RuntimeError,
    "BatchJobFailed": RuntimeError,
    "BatcherClosed": RuntimeError,
    "BodyTooLarge": ValueError,
    "ClientDisconnected": ConnectionError,
    "DeadlineExceeded": TimeoutError,
    "EngineUnavailable": RuntimeError,
    "ForetellError": Exception,
    "InvalidInput": ValueError,
    "InvalidModelURI": ValueError,
    "InvalidRollout": ValueError,
    "InvalidSchedule": ValueError,
    "InvalidServeConfig": ValueError,
    "InvalidSignature": ValueError,
    "InvalidThresholds": ValueError,
    "JobHistoryError": RuntimeError,
    "JobInterrupted": RuntimeError,
    "JobNotFound": LookupError,
    "KeyBookError": RuntimeError,
    "MissingExtra": ImportError,
    "ModelLoadError": RuntimeError,
    "ModelNotFound": LookupError,
    "NotCompilable": RuntimeError,
    "NotFound": LookupError,
    "OutputLocked": RuntimeError,
    "Overloaded": RuntimeError,
    "PredictionError": RuntimeError,
    "ProtocolError": ValueError,
    "RegistryError": ValueError,
    "ScheduleBookError": RuntimeError,
    "ScheduleExists": ValueError,
    "ScheduleNotFound": LookupError,
    "StoreError": RuntimeError,
    "StoreUnavailable": RuntimeError,
    "UnsupportedMediaType": ValueError,
    "UnsupportedModel": TypeError,
    "VersionNotFound": LookupError,
}

# What the optional extras bring (pyproject's [project.optional-dependencies]), by import name:
# a module that needs one at import time is skipped when it is not installed, nothing else is.
_EXTRAS = {"sklearn", "joblib", "onnxruntime", "lightgbm", "xgboost", "redis", "treelite", "tl2cgen", "skl2onnx", "ray"}


def test_public_names_are_pinned_and_sorted():
    assert errors.__all__ == sorted(errors.__all__)
    assert errors.__all__ == [
        "AliasNotFound",
        "ArtifactIntegrityError",
        "BatchJobFailed",
        "BatcherClosed",
        "BodyTooLarge",
        "ClientDisconnected",
        "DeadlineExceeded",
        "EngineUnavailable",
        "ForetellError",
        "InvalidInput",
        "InvalidModelURI",
        "InvalidRollout",
        "InvalidSchedule",
        "InvalidServeConfig",
        "InvalidSignature",
        "InvalidThresholds",
        "JobHistoryError",
        "JobInterrupted",
        "JobNotFound",
        "KeyBookError",
        "MissingExtra",
        "ModelLoadError",
        "ModelNotFound",
        "NotCompilable",
        "NotFound",
        "OutputLocked",
        "Overloaded",
        "PredictionError",
        "ProtocolError",
        "RegistryError",
        "RowError",
        "ScheduleBookError",
        "ScheduleExists",
        "ScheduleNotFound",
        "StoreError",
        "StoreUnavailable",
        "UnsupportedMediaType",
        "UnsupportedModel",
        "VersionNotFound",
    ]
    defined_here = {
        name
        for name, value in vars(errors).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == errors.__name__
    }
    assert defined_here == set(errors.__all__)


def test_row_error_is_a_record_not_an_exception():
    assert not issubclass(errors.RowError, BaseException)
    assert set(errors.__all__) - set(BUILTINS) == {"RowError"}


def test_rows_that_break_several_rules_are_counted_once():
    # Found by fuzzing the server (issue 20): one row with five bad fields was "5 of 1 input rows invalid".
    bad = [errors.RowError(0, f"f{i}", "expected a number") for i in range(5)] + [errors.RowError(2, "g", "missing")]
    message = str(errors.InvalidInput.from_rows(bad, total_rows=3))
    assert message.startswith("2 of 3 input rows invalid: row 0, field 'f0': expected a number;")
    assert message.endswith("(and 3 more)")
    assert str(errors.InvalidInput.from_rows(bad[:2], total_rows=1)).startswith("1 of 1 input row invalid: ")


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_each_error_is_a_foretell_error_and_its_builtin(name: str):
    cls = getattr(errors, name)
    assert issubclass(cls, BUILTINS[name]), f"{name} should be a {BUILTINS[name].__name__}"
    if cls is not errors.ForetellError:
        assert issubclass(cls, errors.ForetellError)
    # The root, and only it, stops at Exception: every other error names a more precise builtin.
    assert (BUILTINS[name] is Exception) == (cls is errors.ForetellError)


def test_every_foretell_error_is_defined_in_errors():
    for module in pkgutil.walk_packages(foretell.__path__, prefix="foretell."):
        if module.name == "foretell.__main__":  # runs the CLI when imported
            continue
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] not in _EXTRAS:
                raise
        except errors.MissingExtra:
            pass
    elsewhere = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _subclasses(errors.ForetellError)
        if cls.__module__.startswith("foretell.") and cls.__module__ != errors.__name__
    )
    assert elsewhere == [], "define these in foretell.errors (and add them to its __all__)"


def _subclasses(cls: type[object]) -> set[type[object]]:
    found: set[type[object]] = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found
