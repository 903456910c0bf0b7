"""A tensor's raw bytes, as OIP carries them outside JSON: Triton's binary extension over REST, and gRPC's
`raw_input_contents` / `raw_output_contents`.

Elements are flat, row-major and little-endian; a BYTES element is a 4-byte little-endian length,
then its bytes. The same rules (and the same error messages) serve both transports.
"""

from __future__ import annotations

import numpy as np

from foretell.protocols.oip.binary_data import _binary_values
from foretell.protocols.oip.response import _to_binary
from foretell.protocols.oip.tensors import Tensor

__all__ = ["decode_raw", "encode_raw"]


def decode_raw(name: str, datatype: str, shape: tuple[int, ...], raw: bytes | memoryview) -> np.ndarray:
    """Raw bytes → the tensor's elements, flat; `ProtocolError` naming the input when they do not fit its shape."""
    return _binary_values(name, datatype, shape, memoryview(raw))


def encode_raw(tensor: Tensor) -> bytes:
    """A tensor → its raw bytes."""
    return _to_binary(tensor)
