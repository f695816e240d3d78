"""Fairness under overload: light accounts' latency with and without a heavy one.

    .venv/bin/python bench/overload.py [--heavy 64] [--light-accounts 3] [--light 2]

Starts ``deepwell serve`` with 8 engine sequences (the default concurrency limit is then
32 per account) and four accounts. First the light accounts alone: each runs ``--light``
concurrent streams, ``--rounds`` requests each. Then the same light load again while a
heavy account keeps ``--heavy`` streams going from a process of its own (a refused stream
retries after ``--retry-pause`` seconds, as a client with a retry loop would). Prints a
Markdown table: the light
accounts' time to first token (p50, p90) in both phases and their ratio, the heavy
account's served requests and 429s, and every other error (there should be none).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Endpoint, Result, deepwell_server, percentile, stream_chat

PROMPTS = [
    "Explain what a hash map is in three sentences.",
    "Write a haiku about compilers.",
    "What is the difference between TCP and UDP?",
    "Describe binary search step by step.",
]


@dataclass
class Tally:
    ttfts: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, result: Result | None, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1
            if result is not None:
                self.ttfts.append(result.ttft)


def one(
    client: httpx.Client, endpoint: Endpoint, prompt: str, max_tokens: int, tally: Tally
) -> int:
    try:
        result = stream_chat(client, endpoint, [{"role": "user", "content": prompt}], max_tokens)
    except httpx.HTTPStatusError as exc:
        tally.add(None, exc.response.status_code)
        return exc.response.status_code
    tally.add(result, 200)
    return 200


def light_load(endpoints: list[Endpoint], streams: int, rounds: int, max_tokens: int) -> Tally:
    tally = Tally()

    def client_loop(endpoint: Endpoint, n: int) -> None:
        with httpx.Client(timeout=600) as client:
            for r in range(rounds):
                one(client, endpoint, PROMPTS[(n + r) % len(PROMPTS)], max_tokens, tally)

    with ThreadPoolExecutor(max_workers=len(endpoints) * streams) as pool:
        jobs = [pool.submit(client_loop, e, n) for e in endpoints for n in range(streams)]
        for job in jobs:
            job.result()
    return tally


class HeavyLoad:
    """``streams`` clients of one account, each sending again as soon as it is answered
    (after a short pause when refused), until ``stop``. They run in a process of their
    own, so that their threads do not hold the light clients' interpreter lock while
    those time their first tokens."""

    def __init__(self, endpoint: Endpoint, streams: int, max_tokens: int, pause: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results: multiprocessing.Queue[Counter[int]] = context.Queue()
        self._process = context.Process(
            target=_heavy, args=(endpoint, streams, max_tokens, pause, self._stop, self._results)
        )
        self._process.start()

    def stop(self) -> Tally:
        self._stop.set()
        tally = Tally(statuses=self._results.get())
        self._process.join()
        return tally


def _heavy(
    endpoint: Endpoint,
    streams: int,
    max_tokens: int,
    pause: float,
    stop: threading.Event,
    results: multiprocessing.Queue[Counter[int]],
) -> None:
    tally = Tally()

    def loop(n: int) -> None:
        with httpx.Client(timeout=600) as client:
            while not stop.is_set():
                prompt = PROMPTS[n % len(PROMPTS)]
                if one(client, endpoint, prompt, max_tokens, tally) != 200:
                    time.sleep(pause)

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(tally.statuses)


def new_key(env: dict[str, str], account: str) -> str:
    deepwell = [sys.executable, "-m", "deepwell"]
    created = subprocess.run(
        [*deepwell, "keys", "create", "--account", account, "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    topup = [*deepwell, "accounts", "topup", account, "100"]
    subprocess.run(topup, env=env, check=True, capture_output=True)
    key: str = json.loads(created.stdout)["key"]
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heavy", type=int, default=64, help="the heavy account's streams")
    parser.add_argument("--light-accounts", type=int, default=3)
    parser.add_argument("--light", type=int, default=2, help="streams per light account")
    parser.add_argument("--rounds", type=int, default=4, help="requests per light stream")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--parallel", type=int, default=8, help="engine sequences")
    parser.add_argument(
        "--retry-pause", type=float, default=0.2, help="seconds a refused heavy stream waits"
    )
    args = parser.parse_args()

    engine_env = {
        "DEEPWELL_ENGINE__N_SEQ_MAX": str(args.parallel),
        "DEEPWELL_ENGINE__N_CTX": "8192",
        "DEEPWELL_LOG_LEVEL": "warning",
    }
    with tempfile.TemporaryDirectory() as tmp, deepwell_server(Path(tmp), engine_env) as served:
        env = {**os.environ, "DEEPWELL_DATA_DIR": tmp, **engine_env}
        lights = [
            Endpoint(f"light{n}", served.base_url, new_key(env, f"light{n}"))
            for n in range(args.light_accounts)
        ]
        heavy = Endpoint("heavy", served.base_url, new_key(env, "heavy"))
        light_load(lights, 1, 1, args.max_tokens)  # warm up
        alone = light_load(lights, args.light, args.rounds, args.max_tokens)

        load = HeavyLoad(heavy, args.heavy, args.max_tokens, args.retry_pause)
        time.sleep(3)  # let the heavy account fill the engine and its limit
        shared = light_load(lights, args.light, args.rounds, args.max_tokens)
        heavy_tally = load.stop()

    report(args, alone, shared, heavy_tally)


def report(args: argparse.Namespace, alone: Tally, shared: Tally, heavy: Tally) -> None:
    p50_alone, p50_shared = percentile(alone.ttfts, 50), percentile(shared.ttfts, 50)
    light_errors = {s: n for s, n in (alone.statuses + shared.statuses).items() if s != 200}
    heavy_other = {s: n for s, n in heavy.statuses.items() if s not in (200, 429)}
    print(
        f"{args.light_accounts} light accounts x {args.light} streams, heavy account x "
        f"{args.heavy} streams, {args.parallel} engine sequences, max_tokens {args.max_tokens}\n"
    )
    print("| phase | light TTFT p50 (s) | light TTFT p90 (s) | light requests |")
    print("|---|---|---|---|")
    for name, tally in (("light alone", alone), ("with the heavy account", shared)):
        print(
            f"| {name} | {percentile(tally.ttfts, 50):.2f} | {percentile(tally.ttfts, 90):.2f} "
            f"| {len(tally.ttfts)} |"
        )
    print(
        f"\nlight TTFT p50 ratio (with heavy / alone): {p50_shared / p50_alone:.2f}x (goal <= 2x)"
    )
    print(f"heavy account: {heavy.statuses[200]} served, {heavy.statuses[429]} answered 429")
    print(f"other errors: light {light_errors or 'none'}, heavy {heavy_other or 'none'}")


if __name__ == "__main__":
    main()
