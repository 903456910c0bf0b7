"""The advisor: measure a model on this machine and say which way of serving fits a workload."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.environment import home_folder
from foretell.api.inputs import read_input

if TYPE_CHECKING:
    from foretell.advisor import Advice, Workload


def advise_workload(settings: Mapping[str, Any], *, file: str | Path | None = None) -> Workload:
    """The workload `foretell advise` weighs: a `preset`, a TOML `file`, and `settings` on top (None: not given)."""
    from foretell.advisor import load_workload, workload_from

    merged: dict[str, Any] = load_workload(file).to_dict() if file is not None else {}
    merged.update({k: v for k, v in settings.items() if v is not None})
    return workload_from(merged, Path(file).stem if file is not None else "custom")


def advice_report(advice: Advice) -> str:
    """`advice` as one self-contained HTML page with plots (no external assets)."""
    from foretell.advisor.report import render_report

    return render_report(advice)


def advise_seconds(*, quick: bool = False) -> float:
    """About how long `advise` measures for."""
    from foretell.advisor.measure import MeasurePlan

    return (MeasurePlan.quick() if quick else MeasurePlan.full()).estimated_seconds


def advise(
    uri: str,
    workload: Workload,
    *,
    quick: bool = False,
    sample: str | Path | None = None,
    home: Path | str | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> Advice:
    """Measure `uri` on this machine through the real batch, serving and store paths, then price `workload`.

    `quick` keeps the measurements under about ten seconds; `sample` is a file of real rows
    (otherwise rows are generated from the signature). Nothing in `home` is changed.
    """
    import pyarrow as pa

    from foretell.advisor import advise as price
    from foretell.advisor.measure import MeasurePlan, measure
    from foretell.batch import run

    rows = None
    if sample is not None:
        found = read_input(sample)
        rows = found if isinstance(found, pa.Table) else pa.Table.from_pylist(found)
    plan = MeasurePlan.quick() if quick else MeasurePlan.full()

    def score_file(model_uri: str, rows_file: Path, output: Path, scratch_home: Path, id_column: str) -> object:
        return run(model_uri, rows_file, output, home=scratch_home, id_column=id_column)

    measured = measure(uri, home=home_folder(home), plan=plan, score_file=score_file, sample=rows, progress=progress)
    return price(workload, measured)
