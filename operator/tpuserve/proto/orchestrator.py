"""JetStream's Orchestrator service for grpc's generic API: its methods in one table, and the call of a method on
a channel (sync or aio). Written by hand instead of grpcio-tools' jetstream_pb2_grpc.py: that file repeats the same
few lines per method and per calling style, and the clients here need only this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from tpuserve.proto import jetstream_pb2

SERVICE = "jetstream_proto.Orchestrator"


@dataclass(frozen=True)
class Method:
    name: str
    request: Any  # a generated message class (jetstream_pb2 is untyped)
    response: Any
    server_streaming: bool

    @property
    def path(self) -> str:
        """The method's HTTP/2 path, as gRPC sends it."""
        return f"/{SERVICE}/{self.name}"


# Streams generated tokens for one prompt.
DECODE = Method("Decode", jetstream_pb2.DecodeRequest, jetstream_pb2.DecodeResponse, server_streaming=True)
# Whether the model server is live (JetStream's own rpc, not grpc.health.v1).
HEALTH_CHECK = Method(
    "HealthCheck", jetstream_pb2.HealthCheckRequest, jetstream_pb2.HealthCheckResponse, server_streaming=False
)


def call(channel: grpc.Channel | grpc.aio.Channel, method: Method) -> Any:
    """The multi-callable of `method` on `channel`: call it with a request message (and timeout=...)."""
    open_call = channel.unary_stream if method.server_streaming else channel.unary_unary
    return open_call(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
