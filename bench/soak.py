"""Soak: many concurrent clients for a while, some leaving mid-request; then nothing leaks.

    .venv/bin/python bench/soak.py [--streams 64] [--seconds 300] [--seed 1] [--json]

Starts ``deepwell serve`` on a new data directory (8 engine sequences, the context cache
on with a small RAM budget, one account allowed twice ``--streams`` requests at once, for
requests whose clients left but that the server has not seen go yet) and runs
``--streams`` clients for ``--seconds``. Each client sends one request after another, of
mixed kinds (chat streamed or not, thinking on or off, a long prompt now and then, FIM),
each with a random ``max_tokens``; about a third of them leave early: a stream after a
few events, a plain request after a random delay.

Then it checks, and exits non-zero if any check fails:

- every answer was a 200, no stream ended with an error event, no request failed on the
  client's side (other than the ones it cut itself);
- ``/health`` shows no busy sequence and an empty queue once the load is over;
- the server's resident memory (``VmRSS``) never grew more than ``--rss-growth`` over
  its peak during the warm-up (the first quarter of the run);
- the ledger, read with the CLI: no hold is left open (``held`` is 0), the balance went
  down by exactly the cost ``deepwell usage`` reports, and it has at least a row for
  every request that got an answer and at most one for every request sent;
- the server logged no error and no traceback.

The short version of this runs in CI (``tests/e2e/test_soak.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, wait_ready

MODEL = "deepseek-v4-flash"
ACCOUNT = "soak"
PROMPTS = [
    "Explain what a hash map is in three sentences.",
    "Write a haiku about compilers.",
    "What is the difference between TCP and UDP?",
    "Describe binary search step by step.",
    "Name three uses of a priority queue.",
    "Why do databases use write-ahead logs?",
]
LONG_PROMPT = (
    "Summarise this design note.\n"
    + (
        "The scheduler batches the next token of every running sequence with a bounded chunk "
        "of prompt tokens of the sequences still reading their prompts, so that a long prompt "
        "never stalls the streams already running. "
    )
    * 12
)
FIM = ("def fibonacci(n):\n    ", "\n    return fibonacci(n - 1) + fibonacci(n - 2)\n")
PLAIN = {"type": "disabled"}
WARM_UP = 0.25
"""The share of the run after which resident memory must stay within its bound."""


@dataclass
class Tally:
    """What the clients saw."""

    sent: int = 0
    answered: int = 0
    completed: int = 0
    cut: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    stream_errors: Counter[str] = field(default_factory=Counter)
    client_errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Served:
    base_url: str
    key: str
    pid: int
    env: dict[str, str]
    log: Path


def request_for(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A random request: its path and body."""
    max_tokens = rng.randint(1, 48)
    roll = rng.random()
    if roll < 0.1:
        prompt, suffix = FIM
        body = {"model": MODEL, "prompt": prompt, "suffix": suffix, "max_tokens": max_tokens}
        return "/beta/completions", {**body, "stream": rng.random() < 0.8}
    content = LONG_PROMPT if roll < 0.2 else rng.choice(PROMPTS)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": rng.random() < 0.8,
        "temperature": rng.choice([0, 0.7]),
    }
    if rng.random() < 0.75:
        body["thinking"] = PLAIN
    return "/chat/completions", body


async def one(client: httpx.AsyncClient, rng: random.Random, tally: Tally) -> None:
    path, body = request_for(rng)
    leave = rng.random() < 0.33
    tally.sent += 1
    try:
        if body["stream"]:
            await _stream(client, path, body, rng.randint(0, 6) if leave else None, tally)
        else:
            patience = rng.uniform(0.05, 3) if leave else None
            try:
                response = await asyncio.wait_for(client.post(path, json=body), patience)
            except TimeoutError:
                tally.cut += 1
                return
            tally.statuses[response.status_code] += 1
            tally.answered += 1
            tally.completed += response.status_code == 200
    except httpx.HTTPError as exc:
        tally.client_errors[type(exc).__name__] += 1
    except asyncio.CancelledError:
        tally.cut += 1  # the run is over: a client gone mid-request like any other
        raise


async def _stream(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    leave_after: int | None,
    tally: Tally,
) -> None:
    async with client.stream("POST", path, json=body) as response:
        tally.statuses[response.status_code] += 1
        tally.answered += 1
        if response.status_code != 200:
            await response.aread()
            return
        events = 0
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                tally.completed += 1
                return
            payload = json.loads(line.removeprefix("data: "))
            if "error" in payload:
                tally.stream_errors[str(payload["error"].get("code"))] += 1
            events += 1
            if leave_after is not None and events > leave_after:
                tally.cut += 1
                return
        tally.client_errors["stream ended without [DONE]"] += 1


async def load(served: Served, streams: int, seconds: float, seed: int) -> Tally:
    """``streams`` clients sending one request after another for ``seconds``; requests
    still running then are cut (their clients leave)."""
    tally = Tally()
    headers = {"Authorization": f"Bearer {served.key}"}
    limits = httpx.Limits(max_connections=streams * 2, max_keepalive_connections=streams)
    async with httpx.AsyncClient(
        base_url=served.base_url, headers=headers, timeout=180, limits=limits
    ) as client:

        async def client_loop(n: int) -> None:
            rng = random.Random(seed * 1_000 + n)
            while True:
                await one(client, rng, tally)

        clients = [asyncio.create_task(client_loop(n)) for n in range(streams)]
        await asyncio.wait(clients, timeout=seconds)
        for running in clients:
            running.cancel()
        for ended in await asyncio.gather(*clients, return_exceptions=True):
            if not isinstance(ended, asyncio.CancelledError):
                raise RuntimeError(f"a client failed: {ended!r}")
    return tally


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def sample_rss(pid: int, every: float, samples: list[tuple[float, float]]) -> None:
    start = time.monotonic()
    while True:
        samples.append((time.monotonic() - start, rss_mib(pid)))
        await asyncio.sleep(every)


async def soak(served: Served, streams: int, seconds: float, seed: int) -> tuple[Tally, Any]:
    samples: list[tuple[float, float]] = []
    sampler = asyncio.create_task(sample_rss(served.pid, 0.5, samples))
    try:
        tally = await load(served, streams, seconds, seed)
    finally:
        sampler.cancel()
    warm = [rss for at, rss in samples if at <= seconds * WARM_UP]
    after = [rss for at, rss in samples if at > seconds * WARM_UP]
    memory = {
        "warm_up_peak_mib": round(max(warm), 1),
        "peak_after_mib": round(max(after, default=max(warm)), 1),
        "end_mib": round(rss_mib(served.pid), 1),
        # At each quarter of the run: whether it levels off or keeps climbing.
        "quarters_mib": [
            round(max(rss for at, rss in samples if at <= seconds * q / 4), 1) for q in (1, 2, 3, 4)
        ],
    }
    return tally, memory


def idle(base_url: str, timeout: float = 15) -> dict[str, int]:
    """Busy sequences and queued requests, once both are 0 or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{base_url}/health", timeout=5).json()
        engines = body["engines"].values()
        queues = body.get("queues", {}).values()
        found = {
            "busy": sum(e["sequences_busy"] for e in engines),
            "engine_queue": sum(e["queue_length"] for e in engines),
            "waiting": sum(q["waiting"] + q["running"] for q in queues),
        }
        if not any(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "deepwell", *args, "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    return json.loads(done.stdout)


def usd(balance: Any, field: str) -> Decimal:
    return sum(
        (Decimal(b[field]) for b in balance["balances"] if b["currency"] == "USD"), Decimal(0)
    )


def ledger(env: dict[str, str], timeout: float = 15) -> dict[str, Any]:
    """The account's balance, once nothing is held or ``timeout`` passes, and its usage."""
    deadline = time.monotonic() + timeout
    while (balance := cli(env, "accounts", "balance", ACCOUNT)) and usd(balance, "held"):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    usage = cli(env, "usage", "--account", ACCOUNT)
    return {
        "held": usd(balance, "held"),
        "total": usd(balance, "total_balance"),
        "usage_cost": Decimal(usage["total_cost"].get("USD", "0")),
        "usage_requests": sum(row["requests"] for row in usage["usage"]),
    }


def log_errors(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if "ERROR" in line or "Traceback" in line]


@contextmanager
def server(data_dir: Path, streams: int, parallel: int) -> Iterator[Served]:
    """``deepwell serve`` on a free loopback port, with a funded key for ``ACCOUNT``."""
    env = {
        **os.environ,
        "DEEPWELL_DATA_DIR": str(data_dir),
        "DEEPWELL_ENGINE__N_SEQ_MAX": str(parallel),
        "DEEPWELL_ENGINE__N_CTX": "8192",
        # A request whose client left holds its place until the server sees it gone, and
        # the client has sent its next one by then: room for both, so none is a 429.
        "DEEPWELL_LIMITS__CONCURRENCY__PER_ACCOUNT": str(2 * streams),
        "DEEPWELL_CACHE__RAM_BYTES": str(32 << 20),
        "DEEPWELL_CACHE__DISK_BYTES": str(256 << 20),
        "DEEPWELL_LOG_LEVEL": "warning",
    }
    port = free_port()
    log = data_dir / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "deepwell", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base_url}/health", process)
        key = cli(env, "keys", "create", "--account", ACCOUNT)["key"]
        cli(env, "accounts", "topup", ACCOUNT, "100")
        yield Served(base_url, key, process.pid, env, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """The soak on ``data_dir``: its figures and which checks passed."""
    with server(data_dir, args.streams, args.parallel) as served:
        start = usd(cli(served.env, "accounts", "balance", ACCOUNT), "total_balance")
        began = time.monotonic()
        tally, memory = asyncio.run(soak(served, args.streams, args.seconds, args.seed))
        elapsed = time.monotonic() - began
        left = idle(served.base_url)
        books = ledger(served.env)
        errors = log_errors(served.log)
    growth = memory["peak_after_mib"] / memory["warm_up_peak_mib"] - 1
    checks = {
        "every answer a 200": set(tally.statuses) <= {200},
        "no stream error": not tally.stream_errors,
        "no client error": not tally.client_errors,
        "no busy sequence, empty queues": not any(left.values()),
        f"memory within {args.rss_growth:.0%} of warm-up": growth <= args.rss_growth,
        "no open hold": books["held"] == 0,
        "balance down by the usage cost": start - books["total"] == books["usage_cost"],
        "a ledger row per answered request": (
            tally.completed <= books["usage_requests"] <= tally.sent
        ),
        "no error logged": not errors,
    }
    return {
        "streams": args.streams,
        "seconds": round(elapsed, 1),
        "seed": args.seed,
        "requests": {**asdict(tally), "statuses": dict(tally.statuses)},
        "at_end": left,
        "memory": {**memory, "growth": round(growth, 4)},
        "ledger": {name: str(value) for name, value in books.items()},
        "logged_errors": errors[:10],
        "checks": checks,
        "ok": all(checks.values()),
    }


def report(result: dict[str, Any]) -> None:
    requests, memory, books = result["requests"], result["memory"], result["ledger"]
    print(
        f"{result['streams']} clients for {result['seconds']} s (seed {result['seed']}): "
        f"{requests['sent']} requests, {requests['completed']} completed, "
        f"{requests['cut']} cut by their client; statuses {requests['statuses']}"
    )
    print(
        f"resident memory: warm-up peak {memory['warm_up_peak_mib']} MiB, peak after "
        f"{memory['peak_after_mib']} MiB ({memory['growth']:+.1%}), end {memory['end_mib']} MiB; "
        f"peak by each quarter {memory['quarters_mib']} MiB"
    )
    print(
        f"ledger: {books['usage_requests']} requests, cost {books['usage_cost']} USD, "
        f"held {books['held']}; at the end {result['at_end']}"
    )
    for name, passed in result["checks"].items():
        print(f"  {'ok  ' if passed else 'FAIL'} {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=64, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=300, help="how long they send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=8, help="engine sequences")
    parser.add_argument(
        "--rss-growth", type=float, default=0.10, help="allowed growth of memory after warm-up"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    if args.json:
        print(json.dumps(result))
    else:
        report(result)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
