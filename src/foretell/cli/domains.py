"""`models register --domain / --propose-domains`: domains declared, or proposed from the sample and confirmed."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from foretell import api
from foretell.cli.output import err, fail, print_json

if TYPE_CHECKING:
    from foretell.core.domain import Domain

DomainOption = Annotated[
    list[str] | None,
    typer.Option(
        "--domain",
        help="NAME=MIN:MAX (either side may be empty: 0:, :120) or NAME=a,b,c: the values feature NAME may take; "
        "an input outside them is refused naming the bound (repeatable).",
    ),
]
ProposeOption = Annotated[
    bool,
    typer.Option(
        "--propose-domains",
        help="Propose each numeric feature's domain from --sample (its observed min:max), show them and ask to "
        "confirm (--yes accepts them; --domain overrides one).",
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="With --propose-domains: accept them without asking.")]


def register_domains(
    name: str,
    path: Path,
    options: Sequence[str],
    *,
    propose: bool,
    yes: bool,
    as_json: bool,
    sample: Path | None,
    **resolving: Any,
) -> tuple[dict[str, Domain], dict[str, Domain]]:
    """(the domains to register with, the ones proposed), once the proposal is confirmed; exits 1 when it is not."""
    declared = api.domain_options(options)
    if not propose:
        return declared, {}
    if sample is None:
        raise typer.BadParameter("--propose-domains reads each feature's observed range from --sample FILE; give one")
    proposed = api.propose_domains(name, path, sample=str(sample), **resolving)
    proposed = {feature: domain for feature, domain in proposed.items() if feature not in declared}
    interactive = not yes and sys.stdin.isatty()
    if not as_json or interactive:
        _print_proposal(proposed, declared, sample)
    if not yes:
        if not interactive:
            if as_json:
                print_json({"registered": False, "proposed_domains": as_dicts(proposed)})
            fail(f"{name} was not registered: confirm the proposed domains with --yes (no terminal to ask on)")
            raise typer.Exit(1)
        if not typer.confirm("Register with these domains?", err=True):
            fail(f"{name} was not registered; declare domains yourself with --domain NAME=MIN:MAX")
            raise typer.Exit(1)
    return {**proposed, **declared}, proposed


def as_dicts(domains: Mapping[str, Domain]) -> dict[str, Any]:
    return {feature: domain.to_dict() for feature, domain in domains.items()}


def _print_proposal(proposed: Mapping[str, Domain], declared: Mapping[str, Domain], sample: Path) -> None:
    table = Table("feature", "domain", "from", title="domains")
    for feature, domain in proposed.items():
        table.add_row(escape(feature), str(domain), f"observed in {escape(sample.name)}")
    for feature, domain in declared.items():
        table.add_row(escape(feature), escape(str(domain)), "--domain")
    err.print(table)
    if not proposed:
        err.print(f"{sample.name} has no numeric feature with a finite value to propose a range for", markup=False)
