"""What the other OIP modules share: the datatypes table and the tensor shapes.

Holds the OIP datatype ↔ numpy dtype mapping, the binary tensor extension's constants, the
decoded `Tensor` and `RequestedOutput`, the numpy → `Tensor` conversion, and the small
helpers that phrase values in error messages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foretell.errors import ProtocolError

#: The most dimensions a tensor may have: numpy allows 64; no tabular model needs more than a handful.
MAX_DIMS = 32

#: The header that carries the JSON part's length when binary tensor data follows it.
BINARY_HEADER = "Inference-Header-Content-Length"

#: OIP datatype name → the numpy dtype a decoded tensor holds (BYTES: objects, each `bytes`).
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAME_OF_DTYPE = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}
_LENGTH_PREFIX = struct.Struct("<I")


@dataclass(slots=True)
class Tensor:
    """One named tensor. `data` is already reshaped to `shape`, in the datatype's numpy dtype."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_text(self) -> np.ndarray:
        """A BYTES tensor's elements as `str` (what a string or category feature takes), same shape."""
        if self.datatype != "BYTES":
            raise ProtocolError(f"input {self.name!r}: expected a BYTES tensor of text, got {self.datatype}")
        flat = self.data.reshape(-1)
        out = np.empty(flat.shape, dtype=object)
        try:
            out[:] = [v.decode() if isinstance(v, bytes) else v for v in flat.tolist()]
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"input {self.name!r}: BYTES element {_bad_utf8(flat)} is not UTF-8 text") from exc
        return out.reshape(self.data.shape)


@dataclass(frozen=True, slots=True)
class TensorBlock:
    """Inputs of one datatype and one shape decoded together: `data[i]` holds input `names[i]`'s elements, flat.

    What a decoder keeps of one tensor per feature besides the tensors themselves, so that
    a model's matrix is built from a few arrays instead of from dozens of tensors.
    """

    names: tuple[str, ...]
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output the client asked for by name, and whether it wants it as binary data."""

    name: str
    binary: bool


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The OIP datatype for a numpy dtype; text and objects are BYTES."""
    if dtype.kind in "OUS":
        return "BYTES"
    name = _NAME_OF_DTYPE.get(dtype.newbyteorder("="))
    if name is None:
        raise TypeError(f"numpy dtype {dtype} has no Open Inference Protocol datatype")
    return name


def tensor_from_array(name: str, array: np.ndarray) -> Tensor:
    """A numpy array → a Tensor; str and object elements become UTF-8 `bytes` in a BYTES tensor."""
    datatype = datatype_of(array.dtype)
    if datatype == "BYTES":
        encoded = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1).tolist()]
        flat = np.empty(len(encoded), dtype=object)
        flat[:] = encoded
        data = flat.reshape(array.shape)
    else:
        data = array.astype(DATATYPES[datatype], copy=False)
    return Tensor(name, datatype, tuple(int(d) for d in array.shape), data, {})


# -- small shared pieces ---------------------------------------------------------------------------


def _bad_utf8(flat: np.ndarray) -> int:
    for index, value in enumerate(flat.tolist()):
        if isinstance(value, bytes):
            try:
                value.decode()
            except UnicodeDecodeError:
                return index
    return -1


_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a bool", int: "an int", float: "a float"}


def _kind(value: Any) -> str:
    """JSON's name for a decoded value, for messages a client can act on."""
    if value is None:
        return "null"
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
