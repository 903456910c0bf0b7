"""What the standard `OTEL_*` variables ask of tracing: which sampler, which exporter, and whether they can be had.

Read once, when tracing is turned on (`foretell.tracing.enable`); nothing here is imported
by a server that does not trace, and no OpenTelemetry module is imported until asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from foretell.errors import InvalidServeConfig, MissingExtra

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

__all__ = ["EXPORTERS", "EXTRA", "SAMPLERS", "processor_from", "require", "sampler_from"]

EXPORTERS = ("otlp", "console", "none")
SAMPLERS = ("always_on", "always_off", "traceidratio")
EXTRA = "otel"


def require(environ: Mapping[str, str] | None = None) -> None:
    """Check that tracing can be turned on as the `OTEL_*` variables say, without turning it on."""
    env = os.environ if environ is None else environ
    try:
        import opentelemetry.sdk.trace  # noqa: F401 - only whether it imports
    except ImportError:
        raise MissingExtra("tracing", "opentelemetry-sdk", EXTRA, needed_by="tracing") from None
    sampler_from(env)
    processor_from(env, build=False)


def sampler_from(env: Mapping[str, str]) -> tuple[bool, float]:
    """(parent-based?, the share of new traces recorded) from `OTEL_TRACES_SAMPLER` and its argument."""
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower() or "parentbased_always_on"
    parent_based = name.startswith("parentbased_")
    kind = name.removeprefix("parentbased_")
    if kind not in SAMPLERS:
        known = [*SAMPLERS, *(f"parentbased_{s}" for s in SAMPLERS)]
        raise InvalidServeConfig(f"OTEL_TRACES_SAMPLER must be one of {known}, got {name!r}")
    if kind != "traceidratio":
        return parent_based, 1.0 if kind == "always_on" else 0.0
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise InvalidServeConfig(f"OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got {raw!r}")
    return parent_based, ratio


def processor_from(env: Mapping[str, str], *, build: bool = True) -> SpanProcessor | None:
    name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name not in EXPORTERS:
        raise InvalidServeConfig(f"OTEL_TRACES_EXPORTER must be one of {list(EXPORTERS)}, got {name!r}")
    if name == "none":
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if name == "console":
        return BatchSpanProcessor(ConsoleSpanExporter()) if build else None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise MissingExtra(
            "tracing", "opentelemetry-exporter-otlp-proto-http", EXTRA, needed_by="the OTLP trace exporter"
        ) from None
    return BatchSpanProcessor(OTLPSpanExporter()) if build else None  # reads OTEL_EXPORTER_OTLP_* itself
