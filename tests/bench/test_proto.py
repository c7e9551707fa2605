"""The committed generated modules are exactly what grpcio-tools makes from our jetstream.proto."""

from __future__ import annotations

from pathlib import Path

from tpuserve.proto import generate


def test_regenerating_gives_the_committed_files(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)
    for path in written:
        committed = generate.PROTO_DIR / path.name
        assert path.read_text() == committed.read_text(), (
            f"{committed} is stale: run `python -m tpuserve.proto.generate` and commit the result"
        )


def test_proto_keeps_jetstreams_wire_names() -> None:
    from tpuserve.proto import jetstream_pb2

    service = jetstream_pb2.DESCRIPTOR.services_by_name["Orchestrator"]
    assert service.full_name == "jetstream_proto.Orchestrator"
    assert set(service.methods_by_name) == {"Decode", "HealthCheck"}
    fields = {f.name: f.number for f in jetstream_pb2.DecodeRequest.DESCRIPTOR.fields}
    # 0.2.2's and the newer server's field numbers, both.
    assert fields == {
        "session_cache": 1,
        "priority": 3,
        "max_tokens": 4,
        "text_content": 5,
        "token_content": 6,
        "metadata": 7,
        "num_samples": 8,
        "lora_adapter_id": 9,
        "has_bos": 10,
    }
    sample = jetstream_pb2.DecodeResponse.StreamContent.Sample.DESCRIPTOR
    assert {f.name: f.number for f in sample.fields} == {"text": 1, "token_ids": 2}
