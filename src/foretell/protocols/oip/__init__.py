"""The Open Inference Protocol (KServe V2, as Triton and MLServer speak it) over REST, as bytes.

Every way a body can be wrong becomes one `ProtocolError` whose message names the tensor,
the field and what was expected. Nothing in this package knows about HTTP frameworks, and only
`rows` about a model (its signature); the HTTP layer passes bytes and headers in, and gets
bytes and headers back.

- `tensors`: the datatypes, `Tensor` and `RequestedOutput`, numpy → `Tensor`.
- `request`: an infer request's bytes (JSON, optionally with binary tensor data) → `InferRequest`.
  Its parts: `json_data`, `binary_data`, `bulk_inputs` (the common form in bulk), `outputs`.
- `response`: output tensors → an infer response's bytes and headers.
- `metadata`: the server and model metadata documents.
- `raw`: a tensor's raw bytes (the binary extension's parts, gRPC's raw contents).
- `rows`: tensors ↔ a model's rows and outputs, by its signature (both transports use it).
"""

from foretell.protocols.oip.metadata import SERVER_NAME, model_metadata, server_metadata
from foretell.protocols.oip.raw import decode_raw, encode_raw
from foretell.protocols.oip.request import (
    InferRequest,
    check_request_parameters,
    decode_infer_request,
    parse_header_length,
)
from foretell.protocols.oip.response import encode_infer_response
from foretell.protocols.oip.tensors import (
    BINARY_HEADER,
    DATATYPES,
    MAX_DIMS,
    RequestedOutput,
    Tensor,
    TensorBlock,
    datatype_of,
    tensor_from_array,
)

__all__ = [
    "BINARY_HEADER",
    "DATATYPES",
    "MAX_DIMS",
    "SERVER_NAME",
    "InferRequest",
    "RequestedOutput",
    "Tensor",
    "TensorBlock",
    "check_request_parameters",
    "datatype_of",
    "decode_infer_request",
    "decode_raw",
    "encode_infer_response",
    "encode_raw",
    "model_metadata",
    "parse_header_length",
    "server_metadata",
    "tensor_from_array",
]
