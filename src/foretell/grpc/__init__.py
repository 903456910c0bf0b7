"""The Open Inference Protocol over gRPC: the only package (with its generated stubs) that imports grpcio."""

from foretell.grpc.server import GrpcServer

__all__ = ["GrpcServer"]
