"""`tpuserve bench run`: validate, load the prompts, wait for the server, warm up, run the stages, write out."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from tpuserve import termination
from tpuserve.bench import PROGRAM, BenchError, RunFailed, storage
from tpuserve.bench import datasets as ds
from tpuserve.bench.client import Client
from tpuserve.bench.filters import Filters
from tpuserve.bench.metrics import parse_run, stage_report
from tpuserve.bench.openai import CHAT, HealthClient, read_bearer, request_body
from tpuserve.bench.openai_http import BaseURL, HttpStreams
from tpuserve.bench.outputs import (
    RESULTS_FILE,
    VllmSettings,
    dump,
    failure_summary,
    jetstream_result,
    print_summary,
    request_outputs,
    stage_file,
    summary,
    vllm_result,
)
from tpuserve.bench.runner import Progress, Runner, Stage, StageRun
from tpuserve.bench.streams import Streams, open_streams
from tpuserve.bench.tokenizer import Tokenizer
from tpuserve.gs_uri import is_gs_uri
from tpuserve.results import JETSTREAM, OPENAI, BenchmarkResults, StageReport


def protocol(args: argparse.Namespace) -> str:
    """--protocol, else openai for an http(s):// target and jetstream otherwise."""
    if args.protocol:
        return str(args.protocol)
    return OPENAI if args.target.startswith(("http://", "https://")) else JETSTREAM


def validate(args: argparse.Namespace) -> None:
    """Flag combinations argparse cannot express; each error says what to change."""
    loads = [name for name in ("request_rate", "concurrency", "sweep") if getattr(args, name) is not None]
    if len(loads) > 1:
        flags = ", ".join("--" + n.replace("_", "-") for n in loads)
        raise BenchError(f"choose one load shape: {flags} were all given")
    if args.concurrency is not None and (args.burstiness is not None or args.max_concurrency is not None):
        raise BenchError("--burstiness and --max-concurrency shape an open-loop rate; --concurrency is a closed loop")
    if protocol(args) == OPENAI:
        BaseURL(args.target)  # raises with the reason
        read_bearer(args.api_key_file)
    else:
        host, sep, port = args.target.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BenchError(f"--target {args.target!r} must be HOST:PORT (e.g. llama.default.svc:9000)")
    if args.dataset == "random":
        if not args.tokenizer:
            raise BenchError("--dataset random needs --tokenizer (the server's tokenizer.json or SentencePiece model)")
        if not 0 <= args.random_range_ratio < 1:
            raise BenchError(f"--random-range-ratio {args.random_range_ratio:g} must be in [0, 1)")
    synthetic = args.dataset == "synthetic"
    lengths = (args.synthetic_input_length, args.synthetic_output_length)
    if synthetic and None in lengths:
        raise BenchError("--dataset synthetic needs --synthetic-input-length and --synthetic-output-length")
    if not synthetic and any(x is not None for x in lengths):
        raise BenchError("--synthetic-input-length/--synthetic-output-length only apply to --dataset synthetic")
    if synthetic and args.dataset_path:
        raise BenchError("--dataset-path does not apply to --dataset synthetic")
    if synthetic and protocol(args) == OPENAI and not args.tokenizer and args.endpoint == CHAT:
        raise BenchError("--dataset synthetic on /v1/chat/completions needs --tokenizer (messages are text)")
    if not synthetic and not args.tokenizer:
        raise BenchError(
            f"--dataset {args.dataset} needs --tokenizer (the server's SentencePiece model or tokenizer.json)"
        )
    if args.save_request_outputs and not args.output:
        raise BenchError("--save-request-outputs needs --output (a directory or gs:// prefix)")
    if args.output and is_gs_uri(args.output):
        storage.split_gcs(args.output)
    if args.metadata is not None:
        try:
            meta = json.loads(args.metadata)
        except json.JSONDecodeError as exc:
            raise BenchError(f"--metadata is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise BenchError('--metadata must be a JSON object, e.g. {"accelerator": "v5e-8"}')


def stages(args: argparse.Namespace) -> list[Stage]:
    def rate_name(r: float) -> str:
        return "rate=inf" if math.isinf(r) else f"rate={r:g}"

    if args.concurrency is not None:
        return [Stage(f"concurrency={args.concurrency}", concurrency=args.concurrency)]
    shape = {"burstiness": args.burstiness, "max_concurrency": args.max_concurrency}
    if args.sweep is not None:
        return [Stage(rate_name(r), request_rate=r, **shape) for r in args.sweep]
    r = args.request_rate if args.request_rate is not None else math.inf
    return [Stage(rate_name(r), request_rate=r, **shape)]


def load_requests(args: argparse.Namespace, tokenizer: Tokenizer | None) -> list[ds.Request]:
    if args.dataset == "random":
        assert tokenizer is not None
        return ds.random_requests(
            args.num_prompts,
            args.seed,
            args.random_input_len,
            args.random_output_len,
            args.random_range_ratio,
            tokenizer,
        )
    if args.dataset == "synthetic":
        return ds.synthetic_requests(
            args.num_prompts,
            args.seed,
            ds.parse_length(args.synthetic_input_length),
            ds.parse_length(args.synthetic_output_length),
            tokenizer,
            args.vocab_size,
        )
    assert tokenizer is not None
    path = args.dataset_path or ds.default_path(args.dataset)
    pairs = ds.load_openorca(path) if args.dataset == "openorca" else ds.load_sharegpt(path, args.conversation_starter)
    filters = Filters(
        min_input_length=args.min_input_length,
        max_input_length=args.max_input_length,
        min_output_length=args.min_output_length,
        max_target_length=args.max_target_length,
        oversample=args.oversample,
    )
    return ds.sample_requests(pairs, tokenizer, args.num_prompts, args.seed, args.max_output_length, filters)


def _now() -> datetime:
    return datetime.now(UTC)


class Session:
    """One `bench run`: holds what has been measured so a failure can still report it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = _now()
        self.reports: list[StageReport] = []
        self.warmup: StageReport | None = None
        self.results_uri: str | None = None
        self.tokenizer: Tokenizer | None = None
        self.protocol = protocol(args)
        self.model: str = args.model

    def settings(self) -> dict[str, Any]:
        return {
            k: (v if not isinstance(v, float) or math.isfinite(v) else "inf")
            for k, v in sorted(vars(self.args).items())
            if k not in {"func", "command", "bench_command"}
        }

    async def measure(self, runner: Runner, requests: list[ds.Request]) -> None:
        args = self.args
        if args.warmup != "none":
            warm = requests if args.warmup == "full" else ds.sampled_warmup(requests)
            if warm:
                # Warm up under the load shape measured first (a sweep's first rate, or the concurrency).
                first = stages(args)[0]
                stage = Stage(
                    "warmup",
                    request_rate=first.request_rate,
                    concurrency=first.concurrency,
                    burstiness=first.burstiness,
                    max_concurrency=first.max_concurrency,
                )
                run = await runner.run_stage(stage, warm, warmup=True)
                self.warmup = stage_report(run, parse_run(run, self.protocol, self.tokenizer))
                print(
                    f"Warmup ({args.warmup}): {self.warmup.successful_requests} ok, "
                    f"{self.warmup.failed_requests} failed; not counted in the results",
                    flush=True,
                )
                if runner.server_gone or runner.terminated:
                    return
                await asyncio.sleep(args.warmup_pause)
        plan = stages(args)
        for i, stage in enumerate(plan):
            if i:
                await asyncio.sleep(args.stage_pause)
            run = await runner.run_stage(stage, requests)
            self.finish_stage(i, run)
            if runner.server_gone or run.aborted:
                break

    def finish_stage(self, index: int, run: StageRun) -> None:
        args = self.args
        results = parse_run(run, self.protocol, self.tokenizer)
        report = stage_report(
            run, results, args.slo_ttft_ms, args.slo_tpot_ms, self.tokenizer, slo_e2el_ms=args.slo_e2el_ms
        )
        self.reports.append(report)
        print(f"==== stage {index}: {run.stage.name} ({len(run.requests)} requests) ====")
        print_summary(report, sys.stdout)
        sys.stdout.flush()
        if args.output:
            metadata = {str(k): str(v) for k, v in json.loads(args.metadata or "{}").items()}
            tokenizer_id = args.tokenizer or f"synthetic(vocab={args.vocab_size})"
            js = jetstream_result(report, args.num_prompts, self.model, tokenizer_id, metadata, _now())
            storage.write_text(stage_file(args.output, index, "jetstream"), dump(js))
            slos = {"ttft": args.slo_ttft_ms, "tpot": args.slo_tpot_ms, "e2el": args.slo_e2el_ms}
            backend = (
                JETSTREAM if self.protocol == JETSTREAM else ("openai-chat" if args.endpoint == CHAT else "openai")
            )
            settings = VllmSettings(
                backend=backend,
                model_id=self.model,
                tokenizer_id=tokenizer_id,
                num_prompts=args.num_prompts,
                burstiness=args.burstiness if args.burstiness is not None else 1.0,
                max_concurrency=args.max_concurrency,
                goodput_slos_ms={k: v for k, v in slos.items() if v is not None},
            )
            vllm = vllm_result(report, results, settings, _now(), detailed=args.save_request_outputs)
            storage.write_text(stage_file(args.output, index, "vllm"), dump(vllm))
            if args.save_request_outputs:
                rows = request_outputs(run.requests, results, self.tokenizer, run.start)
                storage.write_text(stage_file(args.output, index, "request-outputs"), dump(rows))

    def write_results(self, message: str | None) -> None:
        if not self.args.output:
            return
        uri = storage.join(self.args.output, RESULTS_FILE)
        results = BenchmarkResults(
            protocol=self.protocol,
            target=self.args.target,
            started_at=self.started.isoformat(),
            finished_at=_now().isoformat(),
            settings=self.settings(),
            warmup=self.warmup,
            stages=self.reports,
            message=message,
        )
        storage.write_text(uri, results.model_dump_json(by_alias=True, indent=2))
        self.results_uri = uri


async def _main(session: Session, requests: list[ds.Request]) -> str | None:
    """Run everything; return why the run failed or ended early (None = it completed)."""
    args = session.args
    client: Client | HealthClient
    streams: Streams
    encode = None
    if session.protocol == OPENAI:
        bearer = read_bearer(args.api_key_file)
        client = HealthClient(args.target, bearer)
        streams = HttpStreams(args.target, bearer, args.endpoint)
    else:
        client = Client(args.target)
        streams = open_streams(args.target, args.channels, args.engine)
    try:
        try:
            await client.wait_until_live(args.server_wait)
        except TimeoutError as exc:
            raise RunFailed(f"server {args.target} not live after {args.server_wait:g} s ({exc})") from None
        if isinstance(client, HealthClient):
            if session.model == "unknown":
                session.model = await client.first_model(timeout=10.0)
            model, endpoint, ignore_eos = session.model, args.endpoint, args.ignore_eos

            def encode(r: ds.Request) -> bytes:
                # Synthetic prompts without a tokenizer go as token ids (/v1/completions takes a list of ints).
                prompt: str | list[int] = r.prompt if r.prompt or not r.prompt_ids else r.prompt_ids
                return request_body(endpoint, model, prompt, r.max_tokens, ignore_eos)

        tty = sys.stderr.isatty()
        progress = Progress(args.progress == "always" or (args.progress == "auto" and tty))
        deadline = time.monotonic() + args.timeout if args.timeout else None
        runner = Runner(client, streams, args.request_timeout or None, args.seed, progress, deadline, encode)
        main_task = asyncio.current_task()
        assert main_task is not None

        def terminate(name: str) -> None:
            if runner.terminated is None:
                runner.terminated = f"terminated by {name}"
                main_task.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, terminate, sig.name)
        try:
            await session.measure(runner, requests)
        except asyncio.CancelledError:
            if runner.terminated is None:
                raise
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if runner.terminated:
            return f"{runner.terminated}; results are partial"
        if runner.server_gone:
            return f"server became unavailable mid-run ({runner.server_gone}); results are partial"
        ended = next((r.message for r in session.reports if r.message), None)
        if ended:
            return ended
        if not session.reports or not any(r.successful_requests for r in session.reports):
            codes = session.reports[-1].errors if session.reports else {}
            return f"no request succeeded (errors by code: {codes})"
        return None
    finally:
        await streams.close()
        await client.close()


def _event_loop_runner() -> Any:
    try:
        import uvloop  # optional (the bench extra): a faster event loop for the same client

        return uvloop.run
    except ImportError:
        return asyncio.run


def main(args: argparse.Namespace) -> int:
    path = termination.path(args.termination_message_path)
    session = Session(args)
    try:
        validate(args)
        session.tokenizer = Tokenizer.load(args.tokenizer) if args.tokenizer else None
        requests = load_requests(args, session.tokenizer)
        print(f"Prepared {len(requests)} requests ({ds.describe(requests)}) for {args.target}", flush=True)
        message = _event_loop_runner()(_main(session, requests))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        termination.write(path, failure_summary(str(exc)), PROGRAM)
        return 2
    except RunFailed as exc:
        message = str(exc)
    except KeyboardInterrupt:
        message = "interrupted"
    try:
        session.write_results(message)
    except BenchError as exc:
        message = f"{message + '; ' if message else ''}{exc}"
    final = summary(session.reports, session.results_uri, message)
    termination.write(path, final.to_termination_message(), PROGRAM)
    if message:
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0
