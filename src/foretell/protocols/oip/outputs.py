"""The outputs a request asks for, and the checks its inputs and outputs share (parameters, unique names)."""

from __future__ import annotations

from typing import Any

from foretell.errors import ProtocolError
from foretell.protocols.oip.tensors import RequestedOutput, _kind, _short


def _decode_outputs(raw: Any, default_binary: bool) -> list[RequestedOutput] | None:
    if raw is None or raw == []:  # an empty list names nothing: read it as "all outputs", like an absent one
        return None
    if not isinstance(raw, list):
        raise ProtocolError(f"request 'outputs' must be a list, got {_kind(raw)}")
    outputs = []
    for position, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError(f"outputs[{position}] must be an object with a string 'name'")
        name = entry["name"]
        parameters = _parameters(entry, f"output {name!r}")
        for unsupported in ("classification", "shared_memory_region"):
            if unsupported in parameters:
                raise ProtocolError(f"output {name!r}: parameter {unsupported!r} is not supported")
        binary = parameters.get("binary_data", default_binary)
        if type(binary) is not bool:
            raise ProtocolError(f"output {name!r}: parameters.binary_data must be true or false, got {_short(binary)}")
        outputs.append(RequestedOutput(name, binary))
    _no_repeats([o.name for o in outputs], "output")
    return outputs


def _parameters(container: dict[str, Any], owner: str) -> dict[str, Any]:
    parameters = container.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{owner}: 'parameters' must be a JSON object, got {_kind(parameters)}")
    return parameters


def _no_repeats(names: list[str], what: str) -> None:
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ProtocolError(f"{what} names repeat: {repeated}; each {what} must appear once")
