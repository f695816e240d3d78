"""Gateway overhead: deepwell and LiteLLM's proxy in front of the same fast stub upstream.

    .venv/bin/python bench/gateway.py [--duration 10] [--concurrency 64] [--requests 400]
                                      [--rounds 3] [--only stub,deepwell,litellm]

Starts ``bench/stub_upstream.py`` (an OpenAI-chat server that answers two tokens at once),
then the stub alone, ``deepwell serve`` in pass-through mode
(``api = "chat"``) over it, and LiteLLM's proxy over it (``litellm[proxy]``, installed on
first use into ``bench/.venv-litellm``). Each gets the same load from one client process
(``bench/loadgen.py``: raw asyncio on uvloop, one keep-alive connection per client, so
that the client is never what bounds the figures): ``--requests`` sequential requests,
non-stream then stream, for latency, and ``--concurrency`` concurrent clients for
``--duration`` seconds, non-stream then stream, for requests/s at saturation, in
``--rounds`` interleaved rounds (the best round's figures count). Prints a Markdown
table: requests/s, latency p50 and p99, and the latency each gateway adds to the stub's
(its percentile less the stub's), and the CPU time the target's process used per
request at saturation (what bounds its requests/s on a core of its own, and the figure
least disturbed by a busy machine). Loopback only.

deepwell runs as deployed: keys checked on every request, the concurrency limit, the
queue, a hold and a settlement in its ledger (SQLite in a temporary data directory; the
account is funded, so requests hold against the gateway's reserved slice and settle in
batches, see docs/billing.md), metrics and a log line per request. LiteLLM runs with a
model list and a master key (compared in memory): no database, no virtual keys, no
budgets, so it does less per request than deepwell does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Endpoint, free_port, percentile, stop, wait_ready
from loadgen import Connection, ResponseError

LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
LITELLM_PACKAGE = "litellm[proxy]"
MESSAGES = [{"role": "user", "content": "Say hello."}]
PRICES = '{ cache_hit_input = "0.0028", cache_miss_input = "0.14", output = "0.28" }'


@dataclass
class Figures:
    """One target's measurements, in seconds and requests per second."""

    latency: dict[str, list[float]] = field(default_factory=dict)
    rate: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    errors: int = 0


@dataclass
class Target:
    """A server under test and its process (whose CPU time is counted)."""

    endpoint: Endpoint
    pid: int


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` and its descendants, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total, parents = 0.0, {pid}
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats.append((int(entry.name), (entry / "stat").read_text()))
            except OSError:
                continue
    fields = {p: text.rsplit(")", 1)[1].split() for p, text in stats}
    grew = True
    while grew:
        found = {p for p, f in fields.items() if int(f[1]) in parents}
        grew = not found <= parents
        parents |= found
    for p in parents:
        if p in fields:
            total += (int(fields[p][11]) + int(fields[p][12])) / tick
    return total


def body(endpoint: Endpoint, stream: bool) -> dict[str, object]:
    fields: dict[str, object] = {
        "model": endpoint.model,
        "messages": MESSAGES,
        "max_tokens": 8,
        "stream": stream,
    }
    if stream:
        fields["stream_options"] = {"include_usage": True}
    return fields


async def one(connection: Connection, endpoint: Endpoint, stream: bool) -> float:
    """One request, read to its end; its duration (raises on a non-200 or a stream
    without its ``[DONE]``)."""
    began = time.perf_counter()
    headers = {"Authorization": f"Bearer {endpoint.key}"}
    response = await connection.post("/v1/chat/completions", body(endpoint, stream), headers)
    if response.status != 200:
        raise ResponseError(f"status {response.status}: {response.body[:200]!r}")
    if stream:
        if b"data: [DONE]" not in response.body:
            raise ResponseError("stream ended without [DONE]")
    else:
        json.loads(response.body)
    return time.perf_counter() - began


async def sequential(endpoint: Endpoint, count: int, stream: bool, figures: Figures) -> None:
    connection = Connection(endpoint.base_url)
    try:
        for _ in range(min(50, count)):  # warm up the connection and code paths
            await one(connection, endpoint, stream)
        times = [await one(connection, endpoint, stream) for _ in range(count)]
    finally:
        connection.close()
    figures.latency["stream" if stream else "non-stream"] = times


async def saturate(
    target: Target, concurrency: int, duration: float, stream: bool, figures: Figures
) -> None:
    endpoint = target.endpoint
    done = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal done
        connection = Connection(endpoint.base_url)
        try:
            while time.perf_counter() < deadline:
                try:
                    await one(connection, endpoint, stream)
                    done += 1
                except (OSError, asyncio.IncompleteReadError, ResponseError):
                    connection.close()
                    figures.errors += 1
        finally:
            connection.close()

    began, cpu = time.perf_counter(), cpu_seconds(target.pid)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, used = time.perf_counter() - began, cpu_seconds(target.pid) - cpu
    mode = "stream" if stream else "non-stream"
    figures.rate[mode] = done / elapsed
    figures.cpu[mode] = used / max(done, 1)


def measure(target: Target, args: argparse.Namespace, figures: Figures) -> None:
    """One round on ``target``: latency, then saturation, non-stream then stream. A
    figure already there from an earlier round is kept where it was better (the least
    disturbed round counts: the machine may be shared)."""
    fresh = Figures()
    for stream in (False, True):
        uvloop.run(sequential(target.endpoint, args.requests, stream, fresh))
        uvloop.run(saturate(target, args.concurrency, args.duration, stream, fresh))
    print(f"{target.endpoint.name}: {fresh.rate} errors={fresh.errors}", file=sys.stderr)
    for mode, times in fresh.latency.items():
        kept = figures.latency.get(mode)
        if kept is None or percentile(times, 50) < percentile(kept, 50):
            figures.latency[mode] = times
        figures.rate[mode] = max(figures.rate.get(mode, 0.0), fresh.rate[mode])
        figures.cpu[mode] = min(figures.cpu.get(mode, float("inf")), fresh.cpu[mode])
    figures.errors += fresh.errors


@contextmanager
def stub() -> Iterator[Target]:
    port = free_port()
    script = ROOT / "bench" / "stub_upstream.py"
    process = subprocess.Popen([sys.executable, str(script), "--port", str(port)])
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", process, timeout=30)
        yield Target(Endpoint("stub", f"http://127.0.0.1:{port}", model="stub"), process.pid)
    finally:
        stop(process)


def deepwell_config(upstream: Endpoint) -> str:
    """Both public ids on one pass-through backing model over ``upstream``, thinking off
    by default, limits out of the way."""
    models = "\n".join(
        f'[models.{name}]\nbacking = "stub"\nthinking_default = false\nprices = {PRICES}\n'
        for name in ("deepseek-v4-flash", "deepseek-v4-pro")
    )
    return f"""
[backing_models.stub]
reasoning = {{ style = "native" }}

[backing_models.stub.engine]
kind = "remote"
api = "chat"
urls = ["{upstream.base_url}"]
model = "stub"
max_in_flight = 4096

{models}
[limits.concurrency]
per_account = 100000

[queue]
max_requests = 100000
"""


@contextmanager
def deepwell(upstream: Endpoint, work: Path) -> Iterator[Target]:
    """``deepwell serve`` over ``upstream``, with a key of a funded account."""
    data_dir = work / "deepwell"
    data_dir.mkdir()
    config = data_dir / "deepwell.toml"
    config.write_text(deepwell_config(upstream))
    env = {**os.environ, "DEEPWELL_DATA_DIR": str(data_dir), "DEEPWELL_CONFIG_FILE": str(config)}
    command = [sys.executable, "-m", "deepwell"]
    port = free_port()
    log = (data_dir / "serve.log").open("ab")
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", process)
        created = subprocess.run(
            [*command, "keys", "create", "--account", "bench", "--json"],
            env=env,
            check=True,
            capture_output=True,
        )
        topup = [*command, "accounts", "topup", "bench", "1000"]
        subprocess.run(topup, env=env, check=True, capture_output=True)
        key = json.loads(created.stdout)["key"]
        yield Target(Endpoint("deepwell", f"http://127.0.0.1:{port}", key), process.pid)
    finally:
        stop(process)
        log.close()


def litellm_binary() -> Path:
    """LiteLLM's proxy command, in a virtualenv of its own (installed on first use)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        print(f"installing {LITELLM_PACKAGE} into {LITELLM_VENV} (minutes)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        # Keep the virtualenv out of git and of the linters.
        (LITELLM_VENV / ".gitignore").write_text("*\n")
        pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, LITELLM_PACKAGE], check=True)
    return binary


@contextmanager
def litellm(upstream: Endpoint, work: Path) -> Iterator[Target]:
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: deepseek-v4-flash\n"
        "    litellm_params:\n"
        "      model: openai/stub\n"
        f"      api_base: {upstream.base_url}/v1\n"
        "      api_key: none\n"
    )
    port = free_port()
    master_key = f"sk-{secrets.token_hex(32)}"
    # Offline: LiteLLM's own copy of its model price map, no fetch at start.
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "NO_DOCS": "True",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": master_key,
    }
    log = (work / "litellm.log").open("ab")
    command = [str(litellm_binary()), "--config", str(config), "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=work)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/liveliness", process, timeout=300)
        yield Target(Endpoint("LiteLLM", f"http://127.0.0.1:{port}", key=master_key), process.pid)
    finally:
        stop(process)
        log.close()


def table(results: dict[str, Figures], args: argparse.Namespace) -> str:
    base = results.get("stub")
    rows = [
        f"Client: one process, {args.requests} sequential requests for latency, "
        f"{args.concurrency} concurrent for {args.duration:g} s for requests/s; "
        f"replies of two tokens; the best of {args.rounds} rounds.",
        "",
        "| target | mode | requests/s | CPU ms/request | p50 ms | p99 ms | added p50 ms "
        "| added p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, figures in results.items():
        for mode, times in figures.latency.items():
            p50, p99 = percentile(times, 50), percentile(times, 99)
            added = ("", "")
            if base is not None and name != "stub":
                reference = base.latency[mode]
                added = (
                    f"{(p50 - percentile(reference, 50)) * 1000:.2f}",
                    f"{(p99 - percentile(reference, 99)) * 1000:.2f}",
                )
            rows.append(
                f"| {name} | {mode} | {figures.rate[mode]:.0f} | {figures.cpu[mode] * 1000:.2f} "
                f"| {p50 * 1000:.2f} | "
                f"{p99 * 1000:.2f} | {added[0]} | {added[1]} |"
            )
    errors = {name: figures.errors for name, figures in results.items() if figures.errors}
    if errors:
        rows += ["", f"Errors: {errors}"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="stub,deepwell,litellm")
    args = parser.parse_args()
    chosen = args.only.split(",")
    results: dict[str, Figures] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="deepwell-gateway-")))
        upstream = stack.enter_context(stub())
        targets = [upstream] if "stub" in chosen else []
        if "deepwell" in chosen:
            targets.append(stack.enter_context(deepwell(upstream.endpoint, work)))
        if "litellm" in chosen:
            targets.append(stack.enter_context(litellm(upstream.endpoint, work)))
        for _ in range(args.rounds):
            for target in targets:
                name = target.endpoint.name
                measure(target, args, results.setdefault(name, Figures()))
    print(table(results, args))


if __name__ == "__main__":
    main()
