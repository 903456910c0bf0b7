"""Value domains as the CLI declares them: `--domain NAME=MIN:MAX` or `--domain NAME=a,b,c`, repeatable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from foretell.errors import InvalidSignature

if TYPE_CHECKING:
    from foretell.core.domain import Domain


def domain_options(options: Sequence[str]) -> dict[str, Domain]:
    """`--domain` options → name → domain; a name given twice or a value that reads as none is refused, named."""
    from foretell.core.domain import parse_domain_option

    found: dict[str, Domain] = {}
    for option in options:
        name, domain = parse_domain_option(option)
        if name in found:
            raise InvalidSignature(f"--domain {option!r}: {name!r} has a domain already ({found[name]}); give one")
        found[name] = domain
    return found
