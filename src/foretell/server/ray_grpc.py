"""The Ray Serve replica that answers gRPC as well as HTTP, for `foretell serve --engine ray --grpc-port`.

Imported only when a gRPC port is given: it loads grpcio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from foretell.grpc.ray_replica import RayGrpcAnswers
from foretell.server.ray_serve import ForetellReplica, RayGrpcOptions
from foretell.serving.access import Access

__all__ = ["GrpcReplica"]


class GrpcReplica(ForetellReplica, RayGrpcAnswers):
    """A foretell replica whose RPCs (passed on by Ray's gRPC proxy) go through its HTTP app's inference service."""

    def __init__(self, build: Callable[..., Any], build_kwargs: Mapping[str, Any], limits: RayGrpcOptions) -> None:
        ForetellReplica.__init__(self, build, build_kwargs)
        access = Access.of(Path(build_kwargs["home"]), limits.api_key)  # the key book of the home it serves
        RayGrpcAnswers.__init__(self, access=access, max_message_bytes=limits.max_message_bytes)

    def __serve_build_asgi_app__(self) -> Any:
        return self._build(**self._build_kwargs, served=self.answer_through)
