"""A scripted OpenAI-compatible server for the protocol tests: answers streams the way vLLM frames them, and the
fault shapes a real vLLM will not produce on demand (a mid-stream error event, 400/503 bodies, a reset, an
answer that never comes, malformed data, a stream without usage or without [DONE]).

    python -m tests.bench.openai_server --script ok,multi,empty,...    # prints "PORT <n>"

Request i (in arrival order) gets script[i % len(script)]; GET /health and /v1/models answer 200. Plain asyncio
streams, HTTP/1.1 keep-alive, chunked transfer encoding as uvicorn sends it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import struct
from collections.abc import Mapping

SHAPES = (
    "ok",  # one token per chunk, usage at the end, [DONE]
    "multi",  # three tokens per chunk: usage says more tokens than there are chunks
    "empty",  # every chunk has empty text (a token that ends inside a multi-byte piece)
    "nousage",  # no usage chunk
    "error_event",  # two chunks, then data: {"error": ...}, then [DONE]
    "http400",  # 400 with vLLM 0.32's nested error body
    "http503",  # 503 with the older flat error body
    "reset",  # one chunk, then a TCP reset
    "hang",  # reads the request and never answers
    "malformed",  # a data payload that is not JSON
    "nodone",  # the body ends without data: [DONE]
)
# Connection-level shapes, kept apart from SHAPES (a retried request takes the next shape too).
DROP = "drop"  # reads the request and closes the connection without a byte of answer


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(payload: dict[str, object] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return chunk(b"data: " + text.encode() + b"\n\n")


def completion(text: str, finish: str | None = None) -> dict[str, object]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "scripted", "choices": [choice]}


def usage(prompt: int, tokens: int) -> dict[str, object]:
    counts = {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "scripted",
        "choices": [],
        "usage": counts,
    }


STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"


def error_response(status: int, reason: str, body: Mapping[str, object]) -> bytes:
    data = json.dumps(body).encode()
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    return head.encode() + data


async def answer(shape: str, request: dict[str, object], writer: asyncio.StreamWriter) -> bool:
    """Write the response; False = the connection must not be reused."""
    tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or 16)  # type: ignore[call-overload]
    if shape == "hang":
        await asyncio.sleep(3600)
    if shape == DROP:
        return False
    if shape == "http400":
        message = "This model's maximum context length is 256 tokens."
        body = {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}
        writer.write(error_response(400, "Bad Request", body))
        return True
    if shape == "http503":
        flat = {"object": "error", "message": "server overloaded", "type": "ServiceUnavailableError", "code": 503}
        writer.write(error_response(503, "Service Unavailable", flat))
        return True
    writer.write(STREAM_HEAD)
    per_chunk = 3 if shape == "multi" else 1
    parts = [min(per_chunk, tokens - k) for k in range(0, tokens, per_chunk)]
    for i, n in enumerate(parts):
        if shape == "error_event" and i == 2:
            writer.write(event({"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}))
            break
        if shape == "malformed" and i == 1:
            writer.write(chunk(b"data: {not json\n\n"))
            continue
        text = "" if shape == "empty" else " w" * n
        writer.write(event(completion(text, "length" if i == len(parts) - 1 else None)))
        await writer.drain()
        if shape == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
    if shape not in {"nousage", "error_event"}:
        writer.write(event(usage(5, tokens)))
    if shape != "nodone":
        writer.write(event("[DONE]"))
    writer.write(b"0\r\n\r\n")
    return True


async def serve(script: list[str], port: int, token: str | None) -> None:
    shapes = itertools.cycle(script)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split()[:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if method == "GET":
                    data = b'{"object":"list","data":[{"id":"scripted","object":"model"}]}' if "models" in path else b""
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data))
                    await writer.drain()
                    continue
                if token is not None and f"authorization: bearer {token}".lower() not in head.decode("latin-1").lower():
                    body_401 = {"error": {"message": "Unauthorized", "type": "AuthenticationError", "code": 401}}
                    writer.write(error_response(401, "Unauthorized", body_401))
                    await writer.drain()
                    continue
                if not await answer(next(shapes), json.loads(body), writer):
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script", default="ok", help=f"comma-separated shapes from {', '.join(SHAPES)}")
    parser.add_argument("--require-token", help="answer 401 unless the request has this bearer token")
    args = parser.parse_args()
    script = args.script.split(",")
    unknown = set(script) - {*SHAPES, DROP}
    if unknown:
        parser.error(f"unknown shapes {sorted(unknown)}")
    asyncio.run(serve(script, args.port, args.require_token))


if __name__ == "__main__":
    main()
