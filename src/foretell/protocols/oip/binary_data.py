"""Triton's binary tensor extension: the raw bytes after the JSON header, handed to binary inputs in order.

Each binary input says its byte count in `parameters.binary_data_size`; the parts follow in
input order, little-endian, with BYTES elements as a 4-byte little-endian length and then the bytes.
"""

from __future__ import annotations

import math

import numpy as np

from foretell.errors import ProtocolError
from foretell.protocols.oip.tensors import _LENGTH_PREFIX, BINARY_HEADER, DATATYPES


class _BinaryPart:
    """The bytes after the JSON header, handed out to binary inputs in order."""

    __slots__ = ("_announced", "_offset", "_view")

    def __init__(self, view: memoryview, announced: bool) -> None:
        self._view = view
        self._offset = 0
        self._announced = announced

    def take(self, name: str, size: int) -> memoryview:
        left = len(self._view) - self._offset
        if size > left:
            if not self._announced:
                raise ProtocolError(
                    f"input {name!r}: parameters.binary_data_size is {size} but the request has no binary part "
                    f"(send the {BINARY_HEADER} header with the JSON header's length)"
                )
            raise ProtocolError(
                f"input {name!r}: parameters.binary_data_size is {size} but only {left} bytes of binary data are left"
            )
        start = self._offset
        self._offset += size
        return self._view[start : self._offset]

    def left(self) -> int:
        return len(self._view) - self._offset

    def finish(self) -> None:
        extra = len(self._view) - self._offset
        if extra:
            raise ProtocolError(
                f"the body has {len(self._view)} bytes after the JSON header but the inputs' "
                f"parameters.binary_data_size add up to {self._offset}"
            )


# A body without the header has no binary part; with nothing to hand out, one instance serves all.
_NO_BINARY_PART = _BinaryPart(memoryview(b""), announced=False)


def _binary_values(name: str, datatype: str, shape: tuple[int, ...], raw: memoryview) -> np.ndarray:
    expected = math.prod(shape)
    if datatype == "BYTES":
        return _binary_bytes(name, shape, expected, raw)
    dtype = DATATYPES[datatype]
    needed = expected * dtype.itemsize
    if len(raw) != needed:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} of {datatype} needs {needed} bytes of binary data, "
            f"parameters.binary_data_size is {len(raw)}"
        )
    if datatype == "BOOL":
        octets = np.frombuffer(raw, dtype=np.uint8)
        if octets.size and octets.max() > 1:
            raise ProtocolError(f"input {name!r}: BOOL binary data must be bytes 0 or 1")
        return octets.astype(np.bool_)
    # astype copies into native order: the tensor is writable and does not pin the request body.
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)


def _binary_bytes(name: str, shape: tuple[int, ...], expected: int, raw: memoryview) -> np.ndarray:
    values: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end or len(values) == expected:
            break
        (length,) = _LENGTH_PREFIX.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            break
        values.append(bytes(raw[offset : offset + length]))
        offset += length
    if len(values) != expected or offset != end:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} needs {expected} BYTES elements (each a 4-byte little-endian "
            f"length, then the bytes) filling parameters.binary_data_size = {end} bytes exactly"
        )
    array = np.empty(expected, dtype=object)
    array[:] = values
    return array
