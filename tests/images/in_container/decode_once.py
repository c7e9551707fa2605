"""One JetStream Decode request, as a client in the bench image sends it; prints the answer as JSON.

    python decode_once.py HOST:PORT PROMPT MAX_TOKENS
Text in, streamed tokens out (the server tokenizes and detokenizes with the model's tokenizer).
"""

from __future__ import annotations

import json
import sys

import grpc

from tpuserve.proto import jetstream_pb2, orchestrator


def main() -> None:
    target, prompt, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with grpc.insecure_channel(target) as channel:
        decode = orchestrator.call(channel, orchestrator.DECODE)
        request = jetstream_pb2.DecodeRequest(
            max_tokens=max_tokens, text_content=jetstream_pb2.DecodeRequest.TextContent(text=prompt)
        )
        texts, token_ids = [], []
        for response in decode(request, timeout=120):
            for sample in response.stream_content.samples:
                texts.append(sample.text)
                token_ids.extend(sample.token_ids)
    print(json.dumps({"text": "".join(texts), "token_ids": token_ids}))


if __name__ == "__main__":
    main()
