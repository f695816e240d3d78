"""The context cache: time to first token for a long prompt, cold and from each tier.

    .venv/bin/python bench/cache.py [--words 1500]

For one fixed prompt of about 2,000 tokens (``max_tokens`` 1) it measures, first on
deepwell and then on llama.cpp's ``llama-server`` (same GGUF, same threads, two
parallel sequences each):

- cold: the first request;
- warm: the same request again;
- sequence reused: after two other prompts took both sequences (deepwell restores
  from its RAM tier; llama-server from its host-memory prompt cache);
- after restart: the server process is restarted (deepwell restores from its disk
  tier; llama-server has none).

It prints a Markdown table of the times and their ratio to cold.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MODEL_FILE, Endpoint, deepwell_server, document, llama_server, stream_chat

SCENARIOS = ("cold", "warm", "sequence reused", "after restart")


def ttft(endpoint: Endpoint, text: str) -> tuple[float, int, int]:
    """(seconds to the first token, prompt tokens, cache-hit tokens)."""
    messages = [{"role": "user", "content": f"{text}\n\nWhich word comes first?"}]
    with httpx.Client(timeout=600) as client:
        result = stream_chat(client, endpoint, messages, 1)
    return result.ttft, result.prompt_tokens, result.cached_tokens


def run(start: Callable[[], AbstractContextManager[Endpoint]], text: str) -> Iterator[float]:
    """The four scenarios against servers made by ``start`` (restarted for the last)."""
    with start() as endpoint:
        for name in SCENARIOS[:2]:
            yield report(endpoint.name, name, ttft(endpoint, text))
        for seed in (101, 102):  # take both sequences with other prompts
            ttft(endpoint, document(seed, 200))
        yield report(endpoint.name, SCENARIOS[2], ttft(endpoint, text))
    with start() as endpoint:
        yield report(endpoint.name, SCENARIOS[3], ttft(endpoint, text))


def report(server: str, scenario: str, measured: tuple[float, int, int]) -> float:
    seconds, prompt, hit = measured
    print(f"{server:>12} {scenario:>16}: {seconds:.3f}s ({hit}/{prompt} cached)", file=sys.stderr)
    return seconds


def table(ours: list[float], theirs: list[float]) -> str:
    rows = [
        "| scenario | deepwell TTFT (s) | vs cold | llama-server TTFT (s) | vs cold |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, a, b in zip(SCENARIOS, ours, theirs, strict=True):
        rows.append(f"| {name} | {a:.3f} | {a / ours[0]:.1%} | {b:.3f} | {b / theirs[0]:.1%} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=1500, help="prompt length in words")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    text = document(7, args.words)

    with tempfile.TemporaryDirectory(prefix="deepwell-bench-") as tmp:
        data_dir = Path(tmp)
        engine_env = {
            "DEEPWELL_ENGINE__N_CTX": "8192",
            "DEEPWELL_ENGINE__N_SEQ_MAX": "2",
            "DEEPWELL_ENGINE__N_THREADS": str(args.threads),
            "DEEPWELL_ENGINE__N_THREADS_BATCH": str(args.threads),
        }
        ours = list(run(lambda: deepwell_server(data_dir, engine_env), text))
        peer_args = [
            "-t", str(args.threads), "-tb", str(args.threads), "-c", "8192", "-np", "2",
            "-b", "512", "-ub", "512", "--kv-unified", "--jinja",
        ]  # fmt: skip
        model = data_dir / "models" / MODEL_FILE
        log = data_dir / "llama-server.log"
        theirs = list(run(lambda: llama_server(model, peer_args, log), text))
    print(f"\nprompt: {args.words} words, max_tokens 1, threads={args.threads}\n")
    print(table(ours, theirs))


if __name__ == "__main__":
    main()
