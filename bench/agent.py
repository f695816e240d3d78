"""An agent-style workload: users sharing one long system prompt, several turns each.

    .venv/bin/python bench/agent.py [--users 8] [--turns 4] [--system-words 1000] [--each]

Each user resends its growing conversation every turn (the shared system prompt, its
earlier turns, a new question) and streams ``--max-tokens`` tokens, as an agent loop
does. All users start together, so their first turns arrive at once. Runs deepwell and
then llama.cpp's ``llama-server`` (``-np`` equal to deepwell's sequences, its prompt
cache on) on the same GGUF, cores and context, and prints the mean time to first token
per turn and overall, and their ratio; with ``--each``, every request too (when it
started, its time to first token, its prompt and cached tokens).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    MODEL_FILE,
    Endpoint,
    Result,
    deepwell_server,
    document,
    llama_server,
    stream_chat,
)


def system_prompt(words: int) -> str:
    return f"You are a careful assistant. Follow these project notes.\n\n{document(42, words)}"


def user_session(
    endpoint: Endpoint, system: str, user: int, turns: int, max_tokens: int
) -> list[Result]:
    """One user's turns, a result each."""
    messages = [{"role": "system", "content": system}]
    results = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"User {user}, step {turn}: what next?"})
        with httpx.Client(timeout=900) as client:
            result = stream_chat(client, endpoint, messages, max_tokens)
        results.append(result)
        messages.append({"role": "assistant", "content": result.text})
    return results


def run(endpoint: Endpoint, args: argparse.Namespace) -> list[list[float]]:
    """Mean-able TTFTs: one list per turn, one value per user (and, with ``--each``,
    every request printed)."""
    with httpx.Client(timeout=600) as client:  # warm up
        stream_chat(client, endpoint, [{"role": "user", "content": "Hi"}], 4)
    system = system_prompt(args.system_words)
    with ThreadPoolExecutor(args.users) as pool:
        sessions = list(
            pool.map(
                lambda user: user_session(endpoint, system, user, args.turns, args.max_tokens),
                range(args.users),
            )
        )
    if args.each:
        each(endpoint.name, sessions)
    return [[session[turn].ttft for session in sessions] for turn in range(args.turns)]


def each(name: str, sessions: list[list[Result]]) -> None:
    """Every request of a run, by turn: arrival spread is what later turns' TTFTs show."""
    began = min(result.started for session in sessions for result in session)
    print(f"\n{name}: turn, user, started (s), TTFT (s), prompt tokens, cached tokens")
    for turn in range(len(sessions[0])):
        for user, session in enumerate(sessions):
            r = session[turn]
            print(
                f"{turn + 1} {user} {r.started - began:7.2f} {r.ttft:6.2f} "
                f"{r.prompt_tokens:5d} {r.cached_tokens:5d}"
            )


def report(ours: list[list[float]], theirs: list[list[float]]) -> None:
    print("| turn | deepwell mean TTFT (s) | llama-server mean TTFT (s) | ratio |")
    print("|---|---:|---:|---:|")
    for turn, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1):
        mean_a, mean_b = statistics.mean(a), statistics.mean(b)
        print(f"| {turn} | {mean_a:.2f} | {mean_b:.2f} | {mean_a / mean_b:.2f}x |")
    all_a = statistics.mean(v for turn in ours for v in turn)
    all_b = statistics.mean(v for turn in theirs for v in turn)
    print(f"| all | {all_a:.2f} | {all_b:.2f} | **{all_a / all_b:.2f}x** |")
    print("\ngoals: overall <= 0.35x, first turn <= 0.4x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--system-words", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ctx", type=int, default=32768)
    parser.add_argument("--each", action="store_true", help="print every request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deepwell-bench-") as tmp:
        data_dir = Path(tmp)
        engine_env = {
            "DEEPWELL_ENGINE__N_CTX": str(args.ctx),
            "DEEPWELL_ENGINE__N_SEQ_MAX": str(args.users),
            "DEEPWELL_ENGINE__N_THREADS": str(args.threads),
            "DEEPWELL_ENGINE__N_THREADS_BATCH": str(args.threads),
            "DEEPWELL_LOG_LEVEL": "warning",
        }
        with deepwell_server(data_dir, engine_env) as endpoint:
            ours = run(endpoint, args)
        peer_args = [
            "-t", str(args.threads), "-tb", str(args.threads), "-c", str(args.ctx),
            "-np", str(args.users), "-b", "512", "-ub", "512", "--kv-unified", "--jinja",
        ]  # fmt: skip
        model = data_dir / "models" / MODEL_FILE
        with llama_server(model, peer_args, data_dir / "llama-server.log") as endpoint:
            theirs = run(endpoint, args)
    print(
        f"\nusers={args.users} turns={args.turns} system_words={args.system_words} "
        f"max_tokens={args.max_tokens} threads={args.threads} ctx={args.ctx}\n"
    )
    report(ours, theirs)


if __name__ == "__main__":
    main()
