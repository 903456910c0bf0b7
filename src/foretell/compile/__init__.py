"""Compilation: a registered version's faster predictor, proven to answer as the original does.

    compilers/            build and load compiled forms: tree ensembles as native code
                          (bit-vector tables or tl2cgen), scikit-learn pipelines as ONNX graphs
    validation_sample.py  the rows a proof runs on (the user's sample, then generated edge cases)
    ranges.py             the value ranges real data spans, recorded at registration
    parity.py             the proof: same answers on every row, within tolerance
    compilation.py        one compilation: build, prove, time (speed.py), record
    builds.py             build storage: the registry's `compiled` table and `<home>/compiled/`
    verification.py       at every load: may this build be used here? rebuild it if it must be
    report.py             the outcome, as recorded and as `foretell models show` says it

It stands between the registry (which stores versions and calls in here) and the
adapters (whose original predictors every proof compares against).
"""

from foretell.compile.builds import COMPILED_SCHEMA, BuildStore
from foretell.compile.compilation import compile_version
from foretell.compile.parity import DEFAULT_TOLERANCE
from foretell.compile.ranges import OBSERVED_RANGES, observed_ranges
from foretell.compile.report import CompileReport, describe_outcome
from foretell.compile.validation_sample import DEFAULT_ROWS
from foretell.compile.verification import LoadedBuild, load_build

__all__ = [
    "COMPILED_SCHEMA",
    "DEFAULT_ROWS",
    "DEFAULT_TOLERANCE",
    "OBSERVED_RANGES",
    "BuildStore",
    "CompileReport",
    "LoadedBuild",
    "compile_version",
    "describe_outcome",
    "load_build",
    "observed_ranges",
]
