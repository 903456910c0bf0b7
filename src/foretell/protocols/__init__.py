"""Wire formats only: the Open Inference Protocol (`oip`) and MLflow's `/invocations` (`mlflow`).

Bytes in, plain Python and numpy out, and back; no HTTP framework and no event loop, so the
HTTP layer stays a thin "decode → service → encode" and these codecs are tested on their own.
"""

from foretell.protocols.mlflow import (
    Invocation,
    decode_invocations,
    encode_predictions,
    parse_invocations,
)
from foretell.protocols.oip import (
    BINARY_HEADER,
    DATATYPES,
    InferRequest,
    RequestedOutput,
    Tensor,
    datatype_of,
    decode_infer_request,
    encode_infer_response,
    model_metadata,
    parse_header_length,
    server_metadata,
    tensor_from_array,
)

__all__ = [
    "BINARY_HEADER",
    "DATATYPES",
    "InferRequest",
    "Invocation",
    "RequestedOutput",
    "Tensor",
    "datatype_of",
    "decode_infer_request",
    "decode_invocations",
    "encode_infer_response",
    "encode_predictions",
    "model_metadata",
    "parse_header_length",
    "parse_invocations",
    "server_metadata",
    "tensor_from_array",
]
