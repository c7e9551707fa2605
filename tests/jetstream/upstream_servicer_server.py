"""A gRPC server built on JetStream's own generated servicer (`jetstream.core.proto` from the google-jetstream
wheel), for the wire-compatibility test: run it with the JetStream venv's python.

Decode answers `max_tokens` stream messages; token i is (sum(prompt token ids) + i) % 30000, so an answer proves
that the server parsed the client's token_content and max_tokens with upstream's field numbers. Prints
"PORT <n>" when serving; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
from jetstream.core.proto import jetstream_pb2, jetstream_pb2_grpc


class Servicer(jetstream_pb2_grpc.OrchestratorServicer):  # type: ignore[misc]  # JetStream's gencode is untyped
    async def Decode(self, request, context):  # type: ignore[no-untyped-def]
        if request.WhichOneof("content") != "token_content":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected token_content")
        base = sum(request.token_content.token_ids)
        for i in range(request.max_tokens):
            yield jetstream_pb2.DecodeResponse(
                stream_content=jetstream_pb2.DecodeResponse.StreamContent(
                    samples=[jetstream_pb2.DecodeResponse.StreamContent.Sample(token_ids=[(base + i) % 30000])]
                )
            )

    async def HealthCheck(self, _request, _context):  # type: ignore[no-untyped-def]
        return jetstream_pb2.HealthCheckResponse(is_live=True)


async def main() -> None:
    server = grpc.aio.server()
    jetstream_pb2_grpc.add_OrchestratorServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.5)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
