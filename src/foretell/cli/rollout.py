"""`foretell rollout ...`: start a shadow or canary rollout, watch it, promote or abort it."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from foretell import api
from foretell.cli.output import out, print_json
from foretell.errors import InvalidRollout

app = typer.Typer(help="Safe rollouts between two versions: shadow, canary, guarded promotion.", no_args_is_help=True)

#: What `--shadow` means without a PCT: the challenger scores every request.
WHOLE_SHADOW = "100"


class _ShadowMayOmitPercent(TyperCommand):
    """`--shadow` alone means 100 %: typer's parser has no option whose value may be left out, so it is put in here."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        given: list[str] = []
        for i, arg in enumerate(args):
            given.append(arg)
            if arg == "--shadow" and (i + 1 == len(args) or not _is_number(args[i + 1])):
                given.append(WHOLE_SHADOW)
        return list(super().parse_args(ctx, given))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@app.command(
    "start",
    cls=_ShadowMayOmitPercent,
    epilog=(
        "Examples:\n\n"
        "  foretell rollout start churn --challenger 4 --shadow\n\n"
        "  foretell rollout start churn --challenger 4 --shadow 20 --guard max_score_diff_p99=0.05\n\n"
        "  foretell rollout start churn --challenger staging --canary 10 --auto --guard min_requests=5000\n\n"
        "A running server picks the rollout up within about a second (every worker, every replica)."
    ),
)
def start(
    model: Annotated[str, typer.Argument(help="Model name, as registered (churn).")],
    challenger: Annotated[
        str, typer.Option(help="The version to try: a version number (4), an alias (staging) or a URI (churn/4).")
    ],
    shadow: Annotated[
        float | None,
        typer.Option(
            metavar="[PCT]",
            help="Shadow: the champion answers; the challenger also scores PCT % of requests (alone: 100).",
        ),
    ] = None,
    canary: Annotated[
        float | None,
        typer.Option(metavar="PCT", help="Canary: the challenger answers PCT % of requests (0 < PCT < 100)."),
    ] = None,
    sticky: Annotated[
        str,
        typer.Option(
            metavar="key|request",
            help="key: assign by entity key when a request has one (else its id); request: never by key.",
        ),
    ] = "key",
    guard: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=VALUE",
            help="NAME=VALUE over the defaults (repeatable): max_error_rate, max_p99_ratio, max_score_diff_p99, "
            "max_label_flip_rate, min_requests; VALUE none turns one off.",
        ),
    ] = None,
    auto: Annotated[
        bool, typer.Option("--auto", help="Promote on its own once min_requests are measured and every guard holds.")
    ] = False,
    alias: Annotated[str, typer.Option(help="The alias whose version is the champion, and that promotion moves.")] = (
        "production"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the rollout as JSON.")] = False,
) -> None:
    """Start a rollout of a challenger against the version MODEL@ALIAS serves now (one of --shadow/--canary)."""
    if (shadow is None) == (canary is None):
        raise InvalidRollout("give exactly one of --shadow [PCT] or --canary PCT")
    mode, percent = ("shadow", shadow) if shadow is not None else ("canary", canary)
    assert percent is not None
    if sticky not in ("key", "request"):
        raise InvalidRollout(f"--sticky is key or request, got {sticky!r}")
    rollout = api.rollout_start(
        model,
        challenger,
        mode=mode,  # type: ignore[arg-type]  # checked just above
        percent=percent,
        sticky=sticky,  # type: ignore[arg-type]  # checked just above
        guards=guard or (),
        auto=auto,
        alias=alias,
    )
    if as_json:
        print_json(rollout.to_dict())
        return
    how = "also scores" if rollout.mode == "shadow" else "answers"
    out.print(
        f"started {rollout.mode} rollout {rollout.id}: {model} v{rollout.challenger} {how} {rollout.percent:g}% of "
        f"requests; v{rollout.champion} ({model}@{rollout.alias}) stays the champion",
        highlight=False,
        markup=False,
    )
    out.print(
        f"guards: {_limits(rollout.guards.to_dict())}; {'auto-promotes' if rollout.auto else 'promote by hand'}",
        highlight=False,
        markup=False,
    )
    out.print(
        f"running servers pick it up within about a second; watch it with `foretell rollout status {model}`",
        highlight=False,
        markup=False,
    )


@app.command(
    "status",
    epilog="Examples:\n\n  foretell rollout status churn\n\n  foretell rollout status churn --json",
)
def status(
    model: Annotated[str, typer.Argument(help="Model name, as registered (churn).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole status as one JSON document.")] = False,
    ledger: Annotated[
        str | None,
        typer.Option(help="The ledger labels are read from (default: FORETELL_LEDGER, else FORETELL_HOME/ledger)."),
    ] = None,
) -> None:
    """How MODEL's rollout goes (the active one, else the last): both arms, divergence, guards, verdict, decisions."""
    shown = api.rollout_status(model, ledger=ledger)
    if as_json:
        print_json(shown)
        return
    _show(shown)


@app.command("promote", epilog="Example:\n\n  foretell rollout promote churn")
def promote(
    model: Annotated[str, typer.Argument(help="Model name, as registered (churn).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the ended rollout as JSON.")] = False,
) -> None:
    """End MODEL's rollout and move its alias to the challenger (one transaction)."""
    ended = api.rollout_promote(model)
    if as_json:
        print_json(ended.to_dict())
        return
    out.print(f"promoted: {model}@{ended.alias} now points at v{ended.challenger} ({ended.reason})",
              highlight=False, markup=False)  # fmt: skip


@app.command("abort", epilog="Example:\n\n  foretell rollout abort churn")
def abort(
    model: Annotated[str, typer.Argument(help="Model name, as registered (churn).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the ended rollout as JSON.")] = False,
) -> None:
    """End MODEL's rollout; the alias stays on the champion."""
    ended = api.rollout_abort(model)
    if as_json:
        print_json(ended.to_dict())
        return
    out.print(f"aborted: {model}@{ended.alias} stays on v{ended.champion} ({ended.reason})",
              highlight=False, markup=False)  # fmt: skip


def _limits(guards: dict[str, Any]) -> str:
    return ", ".join(f"{name}={'none' if limit is None else f'{limit:g}'}" for name, limit in guards.items())


def _number(value: Any, fmt: str = ".4g", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{suffix}"


def _show(shown: dict[str, Any]) -> None:
    plan, figures, verdict = shown["rollout"], shown["figures"], shown["verdict"]
    state = plan["state"] if plan["state"] == "active" else f"{plan['state']} at {plan['ended_at']}: {plan['reason']}"
    out.print(
        f"[bold]{escape(plan['model'])}[/] {escape(plan['mode'])} {plan['percent']:g}% · v{plan['challenger']} against "
        f"v{plan['champion']} ({escape(plan['model'])}@{escape(plan['alias'])}) · sticky by {escape(plan['sticky'])}"
        f"{' · auto' if plan['auto'] else ''} · since {escape(plan['started_at'])} · {escape(state)}",
        highlight=False,
    )
    arms = Table("arm", "version", "requests", "errors", "error rate", "p50 ms", "p99 ms", title="arms")
    for arm in ("champion", "challenger"):
        a = figures[arm]
        arms.add_row(arm, f"v{plan[arm]}", f"{a['requests']:,}", f"{a['errors']:,}", _number(a["error_rate"], ".2%"),
                     _number(a["p50_ms"], ".2f"), _number(a["p99_ms"], ".2f"))  # fmt: skip
    out.print(arms)
    diff = figures["score_diff"]
    out.print(
        f"p99 ratio {_number(figures['p99_ratio'], '.2f', '×')} · score difference p50 {_number(diff['p50'])} "
        f"p90 {_number(diff['p90'])} p99 {_number(diff['p99'])} · label flip rate "
        f"{_number(figures['label_flip_rate'], '.2%')} · compared {figures['compared']:,} "
        f"· dropped {figures['dropped']:,}",
        highlight=False,
        markup=False,
    )
    guards = Table("guard", "limit", "now", "holds", title="guards")
    for g in shown["guards"]:
        holds = {True: "[green]yes[/]", False: "[bold red]no[/]", None: "[dim]-[/]"}[g["holds"]]
        guards.add_row(g["name"], "off" if g["limit"] is None else f"{g['limit']:g}", _number(g["value"]), holds)
    out.print(guards)
    style = {"abort": "bold red", "promote": "green", "wait": "yellow"}[verdict["action"]]
    reasons = escape("; ".join(verdict["reasons"]))
    out.print(f"verdict now: [{style}]{verdict['action']}[/] · {reasons}", highlight=False)
    _quality(shown["quality"])
    workers = shown["workers"]
    listed = ", ".join(f"{w['worker']} ({w['updated_at']})" for w in workers) or "none yet"
    out.print(f"workers reporting (last report): {escape(listed)}", highlight=False)
    for event in shown["events"]:
        out.print(f"  {escape(event['at'])} {escape(event['action'])}: {escape(event['message'])}", highlight=False)


def _quality(quality: dict[str, Any]) -> None:
    if quality["labelled"] == 0:
        out.print("quality: no labels yet", highlight=False, markup=False)
        return
    table = Table("arm", "version", "source", "predictions", "labelled", "AUC", "log loss", "accuracy", "MAE",
                  "hit rate", title=f"quality since the rollout began ({quality['task']})")  # fmt: skip
    for arm, found in quality["arms"].items():
        for c in found["cells"]:
            table.add_row(arm, f"v{found['version']}", escape(c["source"]), f"{c['count']:,}", f"{c['labelled']:,}",
                          _number(c["auc"]), _number(c["log_loss"]), _number(c["accuracy"], ".1%"), _number(c["mae"]),
                          _number(c["hit_rate"], ".1%"))  # fmt: skip
    out.print(table)
