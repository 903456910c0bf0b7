"""Tree ensembles as native code: treelite reads the trees, gcc compiles them into a shared library.

The library scores every tree with no interpreter and no framework dispatch in between:
one row costs microseconds where scikit-learn's `predict_proba` costs milliseconds of
per-call overhead. Two evaluators write the C:

- bit-vector tables (quickscorer.py, written out by quickscorer_c.py) for trees of at
  most 64 leaves, the boosted models' usual sizes: faster than tl2cgen's in bulk, with
  no branch to mispredict (docs/compile.md, "How the trees are scored");
- tl2cgen's nested branches for deeper trees. Thresholds are quantized (`quantize=1`:
  each value becomes the index of its threshold interval once per row, so every split
  compares integers); that changes no answer, and the parity proof checks it did not.

tl2cgen's own runtime is not used to call it: its `DMatrix` and `Predictor` cost more
Python per call than the trees themselves take (docs/compile.md, "How the trees are
scored"). foretell compiles a small C entry point of its own into the library
(`foretell_predict`: a row-major matrix in, one row of outputs per input row), called
once per batch through ctypes.

For tl2cgen's code, that entry point also settles a quirk: each input cell is a
C union of the value and an int that is -1 for a missing value, so a float64 whose low
32 bits are all ones (23.499999999999996, say: one step below 23.5) would read as
missing. foretell's parity proof found it on exactly such values. Such a cell is moved
one step (towards +inf for `<=` splits, -inf for `<`) before the trees see it; that
changes no comparison unless a threshold itself has those low bits, and a model with
one is refused at build time.

The library runs on the calling thread alone: foretell gets its parallelism from worker
processes, and a pool inside each would fight them for cores.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from foretell.adapters.base import import_framework
from foretell.adapters.outputs import classifier_result
from foretell.compile.compilers.base import (
    ENTRY_VERSION,
    Built,
    c_compiler,
    describe_exception,
    package_version,
)
from foretell.compile.compilers.quickscorer import quickscorer_tables
from foretell.compile.compilers.quickscorer_c import quickscorer_c
from foretell.core.frame import Array, Frame
from foretell.core.predictor import PredictOptions
from foretell.core.schema import Signature
from foretell.errors import ModelLoadError, NotCompilable

__all__ = ["TreeModel", "build_trees", "load_trees", "tree_source", "tree_source_sklearn"]

LIBRARY = "predictor.so"

log = logging.getLogger(__name__)

_SKLEARN_ENSEMBLES = (
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
)


def _treelite() -> Any:
    return import_framework("compile", "treelite", "compile")


#: scikit-learn's classic trees cast X to float32 before comparing it with their (float64) thresholds;
#: the compiled ones must round the same way, or a value between the two roundings goes the other way.
_FLOAT32_INPUTS = frozenset(name for name in _SKLEARN_ENSEMBLES if not name.startswith("HistGradient"))


def tree_source_sklearn(estimator: Any) -> tuple[Any, str] | None:
    """A fitted scikit-learn ensemble as a treelite model and the precision it compares inputs in,
    or None when it is not an ensemble treelite reads."""
    if type(estimator).__name__ not in _SKLEARN_ENSEMBLES:
        return None
    _treelite()
    try:
        import treelite.sklearn

        model = treelite.sklearn.import_model(estimator)
    except Exception as exc:
        raise NotCompilable(f"treelite cannot read this {type(estimator).__name__}: {describe_exception(exc)}") from exc
    return model, "float32" if type(estimator).__name__ in _FLOAT32_INPUTS else "float64"


def tree_source(flavor: str, artifact: Path) -> tuple[Any, str] | None:
    """A LightGBM or XGBoost file as a treelite model and the precision its framework compares
    inputs in, or None for any other flavor."""
    if flavor not in ("lightgbm", "xgboost"):
        return None
    treelite = _treelite()
    try:
        if flavor == "lightgbm":
            return treelite.frontend.load_lightgbm_model(str(artifact)), "float64"
        if artifact.suffix.lower() in (".json", ".ubj"):
            return treelite.frontend.load_xgboost_model(str(artifact)), "float32"
        return treelite.frontend.load_xgboost_model_legacy_binary(str(artifact)), "float32"
    except Exception as exc:
        raise NotCompilable(f"treelite cannot read this {flavor} model: {describe_exception(exc)}") from exc


def build_trees(model: Any, folder: Path, feature_names: list[str], inputs: str = "float64") -> Built:
    """Compile the trees with foretell's entry point into `folder/predictor.so`.

    Bit-vector tables (quickscorer.py) when every tree fits them, faster than tl2cgen's
    nested branches; tl2cgen's C otherwise (trees of over 64 leaves).
    """
    found = c_compiler()
    if found is None:
        raise NotCompilable("no C compiler (gcc or clang) on PATH: tree ensembles are compiled with one")
    compiler, version = found
    splits = _Splits(model)
    edges = splits.edges(feature_names)
    try:
        tables = quickscorer_tables(model)
    except NotCompilable as reason:
        log.info("bit-vector tables do not fit (%s): the trees go to tl2cgen", reason)
    else:
        with tempfile.TemporaryDirectory(prefix="foretell-trees-") as scratch:
            sources = Path(scratch)
            (sources / "quickscorer.c").write_text(quickscorer_c(tables))
            _compile(compiler, sources, folder / LIBRARY, 1)
        return Built(
            "treelite",
            LIBRARY,
            toolchain={"treelite": package_version("treelite"), "evaluator": "quickscorer", compiler: version},
            edges=edges,
            settings={"nudge": "none", "inputs": inputs, "evaluator": "quickscorer"},
        )
    import_framework("compile", "tl2cgen", "compile")  # the extra's hint here, not a child's traceback
    nudge = splits.nudge  # refuses a model the generated code would misread before spending a compile on it
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="foretell-trees-") as scratch:
        sources = Path(scratch)
        _write_c(model, sources, cores)
        (sources / "foretell_entry.c").write_text(_entry_point(str(model.input_type), str(model.output_type)))
        _compile(compiler, sources, folder / LIBRARY, cores)
    return Built(
        "treelite",
        LIBRARY,
        toolchain={"treelite": package_version("treelite"), "tl2cgen": package_version("tl2cgen"), compiler: version},
        edges=edges,
        settings={"nudge": nudge, "inputs": inputs, "evaluator": "tl2cgen"},
    )


# tl2cgen bundles an older treelite, which warns on stderr (from C++, past any Python redirect) that the
# model comes from a newer one, and logs progress through print(). A child process keeps both out of
# the user's terminal and out of a serving process's stderr; the parity proof vouches for the result.
_WRITE_C = """
import sys
import tl2cgen
import treelite

model = treelite.Model.deserialize(sys.argv[1])
tl2cgen.generate_c_code(model, dirpath=sys.argv[2], params={"parallel_comp": int(sys.argv[3]), "quantize": 1})
"""


def _write_c(model: Any, sources: Path, cores: int) -> None:
    """tl2cgen's C for `model` into `sources` (main.c, its translation units, header.h)."""
    checkpoint = sources / "model.treelite"
    model.serialize(str(checkpoint))
    try:
        written = subprocess.run(
            [sys.executable, "-c", _WRITE_C, str(checkpoint), str(sources), str(cores)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except subprocess.TimeoutExpired as exc:
        raise NotCompilable("tl2cgen took over 30 minutes to write the trees as C") from exc
    finally:
        checkpoint.unlink(missing_ok=True)
    if written.returncode != 0:
        last = (written.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise NotCompilable(f"tl2cgen could not write the trees as C: {last}")


_C_TYPES = {"float64": "double", "float32": "float"}


def _entry_point(threshold_type: str, leaf_type: str) -> str:
    """C for `foretell_predict`: rows of doubles in (NaN = missing), N_TARGET * MAX_N_CLASS doubles out per row."""
    value, leaf = _C_TYPES.get(threshold_type), _C_TYPES.get(leaf_type)
    if value is None or leaf is None:
        raise NotCompilable(f"trees with {threshold_type} thresholds and {leaf_type} leaves are not supported")
    return f"""
#include "header.h"

#define FORETELL_EXPORT __attribute__((visibility("default")))

FORETELL_EXPORT int32_t foretell_entry_version(void) {{ return {ENTRY_VERSION}; }}
FORETELL_EXPORT int32_t foretell_num_feature(void) {{ return get_num_feature(); }}
FORETELL_EXPORT int32_t foretell_num_output(void) {{ return N_TARGET * MAX_N_CLASS; }}
FORETELL_EXPORT int32_t foretell_value_bytes(void) {{ return (int32_t)sizeof({value}); }}

/* Row r's feature c is rows[r * row_stride + c * col_stride] (C or Fortran order, no copy).
   nudge: +1 or -1 moves a value the union would read as missing one step that way; 0 never.
   single: round each value to float32 first, as the framework did before comparing it. */
FORETELL_EXPORT int32_t foretell_predict(const double* rows, int64_t n_rows, int64_t n_cols, int64_t row_stride,
                                         int64_t col_stride, int32_t nudge, int32_t single, double* out) {{
  const int64_t width = N_TARGET * MAX_N_CLASS;
  union Entry* entry = (union Entry*)malloc(sizeof(union Entry) * (size_t)n_cols);
  if (entry == NULL) return 1;  /* out of memory */
  {leaf} result[N_TARGET * MAX_N_CLASS];
  for (int64_t r = 0; r < n_rows; ++r) {{
    const double* row = rows + r * row_stride;
    for (int64_t c = 0; c < n_cols; ++c) {{
      const double x = single ? (double)(float)row[c * col_stride] : row[c * col_stride];
      if (isnan(x)) {{
        entry[c].missing = -1;
      }} else {{
        entry[c].fvalue = ({value})x;
        if (entry[c].missing == -1 && nudge != 0) {{
          entry[c].fvalue = nextafter(x, nudge > 0 ? INFINITY : -INFINITY);
        }}
      }}
    }}
    for (int64_t k = 0; k < width; ++k) result[k] = 0;
    predict(entry, 0, result);
    for (int64_t k = 0; k < width; ++k) out[r * width + k] = (double)result[k];
  }}
  free(entry);
  return 0;
}}
"""


def _compile(compiler: str, sources: Path, library: Path, jobs: int) -> None:
    """Compile every translation unit (several at once), then link them into one shared library."""
    flags = ["-O3", "-fPIC", "-std=gnu99", "-fvisibility=hidden"]
    units = sorted(sources.glob("*.c"))
    running: list[tuple[Path, subprocess.Popen[bytes]]] = []
    problems: list[str] = []
    for unit in units:
        if len(running) >= jobs:
            problems += _finished(*running.pop(0))
        process = subprocess.Popen(
            [compiler, *flags, "-c", unit.name, "-o", unit.with_suffix(".o").name],
            cwd=sources,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        running.append((unit, process))
    for unit, process in running:
        problems += _finished(unit, process)
    if problems:
        raise NotCompilable(f"{compiler} could not compile the trees: " + " | ".join(problems)[:2000])
    objects = [unit.with_suffix(".o").name for unit in units]
    linked = subprocess.run(
        [compiler, "-shared", "-o", str(library), *objects, "-lm"], cwd=sources, capture_output=True, text=True
    )
    if linked.returncode != 0:
        raise NotCompilable(f"{compiler} could not link the trees: {linked.stdout}{linked.stderr}"[:2000])


def _finished(unit: Path, process: subprocess.Popen[bytes]) -> list[str]:
    output, _ = process.communicate()
    if process.returncode == 0:
        return []
    return [f"{unit.name}: {output.decode('utf-8', 'replace').strip()[-500:]}"]


# treelite's enums, as its field accessors return them.
_NUMERICAL_TEST = 1
_OPERATORS = {1: "==", 2: "<", 3: "<=", 4: ">", 5: ">="}


class _Splits:
    """The ensemble's numeric splits: thresholds per feature, comparison operators, threshold type."""

    def __init__(self, model: Any) -> None:
        # Read through treelite's field accessors: its JSON dump writes an infinite threshold
        # (scikit-learn's for a split on missing values alone) as nothing at all.
        self.float64 = str(model.input_type) == "float64"
        self.thresholds: dict[int, set[float]] = defaultdict(set)
        self.operators: set[str] = set()
        for tree_id in range(int(model.num_tree)):
            tree = model.get_tree_accessor(tree_id)
            numeric = np.asarray(tree.get_field("node_type")) == _NUMERICAL_TEST
            features = np.asarray(tree.get_field("split_index"))[numeric]
            values = np.asarray(tree.get_field("threshold"), dtype=np.float64)[numeric]
            for feature, value in zip(features.tolist(), values.tolist(), strict=True):
                self.thresholds[int(feature)].add(float(value))
            for code in set(np.asarray(tree.get_field("cmp"))[numeric].tolist()):
                self.operators.add(_OPERATORS.get(int(code), f"operator {code}"))

    def edges(self, feature_names: list[str]) -> dict[str, list[float]]:
        return {
            feature_names[index]: sorted(v for v in values if np.isfinite(v))
            for index, values in self.thresholds.items()
            if index < len(feature_names) and any(np.isfinite(v) for v in values)
        }

    @property
    def nudge(self) -> str:
        """Which way to move a cell tl2cgen would misread as missing (see the module's docstring)."""
        if not self.float64 or not self.operators:
            return "none"  # a float32 cell with all 32 bits set is a NaN, which is missing anyway
        every = np.array(sorted(set().union(*self.thresholds.values())), dtype=np.float64)
        every = every[np.isfinite(every)]
        if _misread(every).any():
            raise NotCompilable("a split threshold is a value tl2cgen's generated code would read as missing")
        if self.operators <= {"<=", ">"}:
            return "up"
        if self.operators <= {"<", ">="}:
            return "down"
        raise NotCompilable(f"splits mix comparison operators {sorted(self.operators)}")


def _misread(values: np.ndarray) -> np.ndarray:
    """Finite float64 values whose low 32 bits are all ones, which tl2cgen's input union reads as missing."""
    low_words = values.view(np.uint32).reshape(*values.shape[:-1], -1)[..., 0 if sys.byteorder == "little" else 1 :: 2]
    misread: np.ndarray = (low_words == 0xFFFFFFFF) & np.isfinite(values)
    return misread


def declare_entry(entry: Any) -> Any:
    """`foretell_predict(rows, n_rows, n_cols, row_stride, col_stride, nudge, single, out)` for ctypes.

    It returns 0, or 1 when it could not allocate its working memory (`out` is then not written)."""
    entry.restype = ctypes.c_int32
    entry.argtypes = (
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.c_void_p,
    )
    return entry


def strided(matrix: np.ndarray) -> tuple[np.ndarray, int, int]:
    """`matrix` as float64 with its row and column strides in elements, copied only if it must be."""
    if matrix.dtype != np.float64 or any(step % 8 for step in matrix.strides):
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    return matrix, matrix.strides[0] // 8, matrix.strides[1] // 8


class TreeModel:
    """A compiled library called through `foretell_predict` once per batch, on the calling thread."""

    releases_gil = True  # a ctypes.CDLL call drops the GIL for as long as the trees run

    def __init__(self, library: Path, signature: Signature, nudge: str = "none", inputs: str = "float64") -> None:
        try:
            self._library = ctypes.CDLL(str(library))
            entry = self._library.foretell_predict
        except (OSError, AttributeError) as exc:
            raise ModelLoadError(f"could not load the compiled library {library}: {exc}") from exc
        built_for = (
            int(self._library.foretell_entry_version()) if hasattr(self._library, "foretell_entry_version") else 0
        )
        if built_for != ENTRY_VERSION:
            raise ModelLoadError(
                f"the compiled library {library} has entry point version {built_for}, this foretell calls "
                f"version {ENTRY_VERSION}: compile the model again (foretell models compile)"
            )
        self._entry = declare_entry(entry)
        self._width = len(signature.inputs)
        features = int(self._library.foretell_num_feature())
        if features != self._width:
            raise ModelLoadError(
                f"the compiled library {library.name} takes {features} features, the signature {self._width}"
            )
        self._outputs = int(self._library.foretell_num_output())
        is_classifier = "proba" in signature.output_names
        self._classes = np.asarray(signature.output("proba").classes) if is_classifier else None
        if nudge not in _NUDGES:
            raise ModelLoadError(f"unknown nudge {nudge!r} recorded for {library.name}")
        self._nudge = _NUDGES[nudge]
        if inputs not in ("float64", "float32"):
            raise ModelLoadError(f"unknown input rounding {inputs!r} recorded for {library.name}")
        self._single = int(inputs == "float32")

    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, Array]:
        # Coercion builds column-major matrices, a served row is row-major: the library reads either.
        matrix, row_stride, col_stride = strided(frame.matrix(np.float64))
        n = frame.n_rows
        values = np.empty((n, self._outputs), dtype=np.float64)
        failed = self._entry(
            matrix.ctypes.data, n, self._width, row_stride, col_stride, self._nudge, self._single, values.ctypes.data
        )
        if failed:
            raise MemoryError(f"the compiled trees could not allocate their working memory for {n} rows")
        if self._classes is None:
            return {"score": values[:, 0]}
        if self._outputs > 1:
            return classifier_result(values, self._classes)
        # Binary models give P(second class) alone; the first is its complement, as the frameworks compute it.
        proba = np.empty((n, 2), dtype=np.float64)
        proba[:, 1] = values[:, 0]
        np.subtract(1.0, values[:, 0], out=proba[:, 0])
        return classifier_result(proba, self._classes)


_NUDGES = {"none": 0, "up": 1, "down": -1}


def load_trees(library: Path, signature: Signature, settings: Mapping[str, str]) -> TreeModel:
    return TreeModel(library, signature, settings.get("nudge", "none"), settings.get("inputs", "float64"))
