"""`foretell models ...`: register, list, show, alias and delete model versions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from foretell import api
from foretell.cli.domains import DomainOption, ProposeOption, YesOption, as_dicts, register_domains
from foretell.cli.output import err, out, print_json
from foretell.cli.profile_table import print_profile
from foretell.errors import ForetellError, InvalidSignature

if TYPE_CHECKING:
    from foretell.core.model import ModelInfo

app = typer.Typer(help="The model registry: versions, aliases, signatures.", no_args_is_help=True)


RUNS_CODE = {
    "sklearn": "loading a joblib/pickle file runs code from it: register only files you trust, or save the model "
    "with skops (.skops), ONNX or its framework's own format",
    "python": "a python-flavor model is your own code, imported when it loads",
}
"""Flavors whose loading runs code from the registered files: said once, when one is registered."""


def _flavor_options(python_class: str | None, trust: list[str] | None) -> dict[str, Any] | None:
    options: dict[str, Any] = {}
    if python_class:
        options["class"] = python_class
    if trust:
        options["trusted"] = sorted(set(trust))
    return options or None


@app.command(
    "register",
    epilog=(
        "Examples:\n\n"
        "  foretell models register churn ./churn.joblib --alias production\n\n"
        "  foretell models register churn ./model.onnx --sample rows.parquet\n\n"
        "  foretell models register churn ./churn.skops --trust sklearn.tree._tree.Tree   # no unpickling\n\n"
        "  foretell models register recs ./recs/ --flavor python --python-class recs.py:Recommender\n\n"
        "  foretell models register churn ./churn.joblib --no-compile\n\n"
        "  foretell models register churn ./churn.joblib --domain tenure_months=0:120 --domain support_calls_30d=0:\n\n"
        "  foretell models register churn ./churn.joblib --sample rows.parquet --propose-domains --yes"
    ),
)
def register(
    name: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    path: Annotated[Path, typer.Argument(help="Model file or folder.", exists=True)],
    flavor: Annotated[
        str | None, typer.Option(help="sklearn, skops, onnx, lightgbm, xgboost or python (default: detected).")
    ] = None,
    signature: Annotated[
        Path | None, typer.Option(help="JSON file with the signature (inputs, outputs).", exists=True, dir_okay=False)
    ] = None,
    sample: Annotated[
        Path | None, typer.Option(help="Parquet/CSV rows whose columns name and type the inputs.", exists=True)
    ] = None,
    python_class: Annotated[
        str | None, typer.Option(help="For --flavor python: 'package.module:Class' or 'file.py:Class'.")
    ] = None,
    trust: Annotated[
        list[str] | None,
        typer.Option(help="For a .skops file: a type beyond skops' defaults to trust when loading (repeatable)."),
    ] = None,
    alias: Annotated[list[str] | None, typer.Option(help="Alias to point at the new version (repeatable).")] = None,
    description: Annotated[str, typer.Option(help="A line about this version.")] = "",
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile/--no-compile",
            help="Compile it to a native (trees) or ONNX predictor and prove it against the original (default).",
        ),
    ] = True,
    domain: DomainOption = None,
    propose_domains: ProposeOption = False,
    yes: YesOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the new version as JSON.")] = False,
) -> None:
    """Register a model file or folder as the next version of NAME, then compile it (see `models compile`)."""
    described = _read_signature(signature) if signature else None
    options = _flavor_options(python_class, trust)
    domains, proposed = register_domains(
        name,
        path,
        domain or (),
        propose=propose_domains,
        yes=yes,
        as_json=as_json,
        sample=sample,
        flavor=flavor,
        signature=described,
        flavor_options=options,
    )
    info = api.register(
        name,
        path,
        flavor=flavor,
        signature=described,
        sample=str(sample) if sample else None,
        flavor_options=options,
        description=description,
        aliases=alias or (),
        compile=False,
        domains=domains,
    )
    if info.flavor in RUNS_CODE:
        err.print(f"note: {RUNS_CODE[info.flavor]} (docs/security.md)", highlight=False, markup=False)
    if not as_json:
        aliases = f" (aliases: {', '.join(info.aliases)})" if info.aliases else ""
        out.print(f"registered {info.uri} \\[{info.flavor}] sha256 {info.sha256[:12]}{aliases}", highlight=False)
    if compile_:
        try:
            with err.status(f"compiling {escape(info.uri)} and proving it against the original ..."):
                report = api.compile_model(info.uri, sample=str(sample) if sample else None)
        except ForetellError as exc:  # registered all the same: it keeps its original predictor
            err.print(f"warning: {info.uri} was registered but not compiled: {exc}", highlight=False, markup=False)
        else:
            info = api.show(info.uri)
            if not as_json:
                out.print("  " + _outcome(report.to_dict()), highlight=False, markup=False)
    if as_json:
        print_json({**info.to_dict(), "proposed_domains": as_dicts(proposed)} if propose_domains else info.to_dict())


@app.command(
    "compile",
    epilog=(
        "Examples:\n\n"
        "  foretell models compile churn@production\n\n"
        "  foretell models compile churn/3 --sample customers.parquet --tolerance 1e-9 --json"
    ),
)
def compile_(
    uri: Annotated[str, typer.Argument(help="models:/name/3, models:/name@alias, name/3, name@alias or name.")],
    sample: Annotated[
        Path | None,
        typer.Option(
            help="Parquet/CSV rows to prove the compiled predictor on (topped up with generated rows).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Largest absolute difference allowed in any score or probability.", min=0.0)
    ] = 1e-6,
    rows: Annotated[int, typer.Option(help="Rows in the validation sample (at least 10,000).", min=1)] = 16_384,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Compile a model version and prove it: used from then on only if it gives the original's answers.

    Tree ensembles (scikit-learn, LightGBM, XGBoost) become a shared library built by
    treelite + tl2cgen with this machine's C compiler; other scikit-learn models and
    pipelines an ONNX graph run by ONNX Runtime. Both predictors score the same
    validation rows; every score and probability must agree within --tolerance and every
    label exactly, or the version keeps its original predictor. `foretell models show`
    prints the outcome, and `--predictor original` (predict, batch run, serve) bypasses it.
    """
    with err.status(f"compiling {escape(uri)} and proving it against the original ..."):
        report = api.compile_model(uri, sample=str(sample) if sample else None, tolerance=tolerance, rows=rows)
    if as_json:
        print_json({"uri": api.show(uri).uri, **report.to_dict()})
        return
    out.print(f"{api.show(uri).uri}: {_outcome(report.to_dict())}", highlight=False, markup=False)
    if report.used:
        _print_speed(report.to_dict())


def _print_speed(compiled: Mapping[str, Any]) -> None:
    speed = compiled.get("speed") or {}
    if not speed:
        return
    table = Table("one thread", "original", "compiled", "speed-up", title="measured while compiling")
    before, after, ratio = speed["original"], speed["compiled"], speed["speedup"]
    table.add_row(
        "1 row", f"{before['single_row_us']:,.1f} µs", f"{after['single_row_us']:,.1f} µs", f"{ratio['single_row']:g}×"
    )
    table.add_row(
        "64 rows", f"{before['batch_64_us']:,.1f} µs", f"{after['batch_64_us']:,.1f} µs", f"{ratio['batch_64']:g}×"
    )
    table.add_row(
        "bulk",
        f"{before['rows_per_second']:,} rows/s",
        f"{after['rows_per_second']:,} rows/s",
        f"{ratio['rows_per_second']:g}×",
    )
    out.print(table)


def _read_signature(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidSignature(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidSignature(f"{path.name} must hold a JSON object with 'inputs' and 'outputs'")
    return data


@app.command("list", epilog="Examples:\n\n  foretell models list\n\n  foretell models list churn --json")
def list_(
    name: Annotated[str | None, typer.Argument(help="List this model's versions instead of all models.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered models, or the versions of one model."""
    if name is None:
        models = api.list_models()
        if as_json:
            print_json([m.to_dict() for m in models])
            return
        table = Table("name", "versions", "latest", "aliases", "description", title="registered models")
        for m in models:
            aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
            table.add_row(m.name, str(m.version_count), str(m.latest_version), aliases, escape(m.description))
        out.print(table)
        return
    versions = api.list_versions(name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    table = Table("version", "flavor", "aliases", "created", "size", "sha256", title=f"versions of {name}")
    for v in versions:
        table.add_row(str(v.version), v.flavor, ", ".join(v.aliases), v.created_at, _size(v.size_bytes), v.sha256[:12])
    out.print(table)


@app.command(
    "show",
    epilog="Examples:\n\n  foretell models show churn@production\n\n  foretell models show models:/churn/2 --json",
)
def show(
    uri: Annotated[str, typer.Argument(help="models:/name/3, models:/name@alias, name/3, name@alias or name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one model version: signature, flavor, sha256, size, framework versions, reference profile."""
    info = api.show(uri)
    stored = api.stored_profile(info.uri)
    profile = stored.to_dict() if stored is not None else None
    if as_json:
        print_json({**info.to_dict(), "profile": profile})
        return
    _print_info(info)
    print_profile(info.uri, profile)


@app.command(
    "profile",
    epilog=(
        "Examples:\n\n"
        "  foretell models profile churn/3 --sample customers.parquet\n\n"
        "  foretell models profile churn@production --json"
    ),
)
def profile(
    uri: Annotated[str, typer.Argument(help="models:/name/3, models:/name@alias, name/3, name@alias or name.")],
    sample: Annotated[
        Path | None,
        typer.Option(help="Parquet/CSV/JSON Lines rows like the ones it will score.", exists=True, dir_okay=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole profile as JSON.")] = False,
) -> None:
    """Compute a version's reference profile again and store it: what `foretell monitor` measures drift against.

    From --sample's rows the signature accepts (others skipped), else from the rows its
    compile proved on (mostly generated: a sample of real rows makes a truer reference).
    Registration computes one on its own.
    """
    with err.status(f"profiling {escape(uri)} ..."):
        made = api.profile_model(uri, sample=str(sample) if sample else None)
    if as_json:
        print_json(made.to_dict())
        return
    print_profile(api.show(uri).uri, made.to_dict())


def _outcome(compiled: Mapping[str, Any]) -> str:
    from foretell.compile import describe_outcome  # the compilers' package: only for a model's own commands

    return describe_outcome(compiled)


def _print_info(info: ModelInfo) -> None:
    out.print(f"[bold]{info.uri}[/]  {escape(info.description)}", highlight=False)
    rows = [
        ("flavor", info.flavor),
        ("aliases", ", ".join(info.aliases) or "-"),
        ("created", info.created_at),
        ("size", _size(info.size_bytes)),
        ("sha256", info.sha256),
        ("frameworks", ", ".join(f"{k} {v}" for k, v in info.framework_versions.items())),
    ]
    rows += [(key, str(value)) for key, value in info.flavor_options.items()]
    for key, value in rows:
        out.print(f"  {key:<11} {value}", highlight=False, markup=False)
    compiled = info.compiled
    out.print(
        "  predictor   " + (_outcome(compiled) if compiled else "original (never compiled: foretell models compile)"),
        highlight=False,
        markup=False,
    )
    if compiled:
        _print_speed(compiled)
    inputs = Table("input", "dtype", "missing ok", "domain", "details", title="signature")
    for f in info.signature.inputs:
        details = ", ".join(f.categories) if f.categories else (f"shape {list(f.shape)}" if f.shape else "")
        bound = str(f.domain) if f.domain is not None else "-"
        inputs.add_row(f.name, f.dtype, "yes" if f.allow_missing else "no", escape(bound), escape(details))
    out.print(inputs)
    outputs = Table("output", "kind", "dtype", "details")
    for o in info.signature.outputs:
        details = f"classes {list(o.classes)}" if o.classes else (f"shape {list(o.shape)}" if o.shape else "")
        outputs.add_row(o.name, o.kind, o.dtype, escape(details))
    out.print(outputs)


@app.command(
    "alias",
    epilog="Examples:\n\n  foretell models alias churn production 3\n\n  foretell models alias churn staging --delete",
)
def alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production or staging.")],
    version: Annotated[int | None, typer.Argument(help="Version the alias should point at.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Point an alias at a version (moving it if it exists), or delete it."""
    if delete == (version is not None):
        raise typer.BadParameter("give either a VERSION to point the alias at, or --delete")
    api.set_alias(name, alias, None if delete else version)
    if as_json:
        print_json({"name": name, "alias": alias, "version": None if delete else version})
        return
    out.print(f"{name}@{alias} " + ("deleted" if delete else f"→ version {version}"), highlight=False)


@app.command("delete", epilog="Example: foretell models delete churn 2")
def delete(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to delete.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Delete one version (and any alias pointing at it)."""
    api.delete_version(name, version)
    if as_json:
        print_json({"deleted": f"models:/{name}/{version}"})
        return
    out.print(f"deleted models:/{name}/{version}", highlight=False)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
