"""Helpers for the gRPC tests (imported by name): the served process's addresses, and tritonclient inputs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

sys.path.insert(0, str(Path(__file__).parent.parent / "serving"))  # servekit: the real server process


@dataclass(frozen=True)
class Served:
    """A running `foretell serve` with gRPC: its REST base URL and its gRPC address."""

    url: str
    grpc: str


def tensor(name: str, array: np.ndarray, datatype: str) -> grpcclient.InferInput:
    """A tritonclient input holding `array` (sent as raw_input_contents, tritonclient's default)."""
    given = grpcclient.InferInput(name, list(array.shape), datatype)
    given.set_data_from_numpy(array)
    return given
