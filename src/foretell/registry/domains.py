"""Domains proposed from a registration sample: each numeric feature's observed range, for a person to confirm.

The proposal is the sample's own [min, max] per numeric feature, not widened: any margin
would be a guess that is wrong for someone (a 0/1 flag, a 1-5 scale), while the observed
range is something the person confirming can judge at a glance and correct with
`--domain NAME=MIN:MAX`. A proposal is never applied without that confirmation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foretell.adapters import detect_flavor, get_flavor
from foretell.compile import observed_ranges
from foretell.core.domain import Domain
from foretell.core.schema import Signature
from foretell.registry.sqlite import signature_for

__all__ = ["observed_domains", "propose_domains"]


def propose_domains(
    name: str,
    path: Path,
    *,
    sample: object,
    flavor: str | None = None,
    signature: Signature | Mapping[str, Any] | None = None,
    flavor_options: Mapping[str, Any] | None = None,
) -> dict[str, Domain]:
    """The domains `sample` suggests for the signature registering `path` would record (nothing is registered)."""
    chosen = get_flavor(flavor) if flavor else detect_flavor(Path(path))
    resolved = signature_for(name, Path(path), chosen, dict(flavor_options or {}), signature, sample)
    return observed_domains(resolved, sample)


def observed_domains(signature: Signature, sample: object) -> dict[str, Domain]:
    """Each scalar numeric feature's [min, max] in `sample`, in signature order (none for a feature with no value)."""
    ranges = observed_ranges(signature, sample)
    return {f.name: Domain(ranges[f.name][0], ranges[f.name][1]) for f in signature.inputs if f.name in ranges}
