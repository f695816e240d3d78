"""Gateway overhead, this tree against an earlier commit, interleaved on one machine.

    .venv/bin/python bench/gateway_ab.py --base REV [--rounds 4] [--requests 800]

This machine's speed varies by a third from hour to hour, more than most changes to
the gateway move its latency, so two runs of ``bench/gateway.py`` an hour apart do not
compare. This starts ``bench/stub_upstream.py`` and two ``deepwell serve`` over it, one
from a git worktree of ``REV`` and one from this tree (the same virtual environment),
then runs ``--requests`` sequential requests against each in turn, non-stream then
stream, ``--rounds`` times. Prints the median and the best p50 of the rounds, and the
server's CPU time per request, for each tree and mode. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, percentile
from gateway import Figures, Target, cpu_seconds, deepwell, sequential, stub

MODES = {"non-stream": False, "stream": True}


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached git worktree of ``rev``, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="deepwell-ab-") as parent:
        path = Path(parent) / "tree"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(path), rev], check=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=True)


@contextmanager
def server_of(src: Path, upstream: Target, work: Path) -> Iterator[Target]:
    """``deepwell serve`` importing deepwell from ``src`` (ahead of the installed one)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    try:
        with deepwell(upstream.endpoint, work) as target:
            yield target
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def one_round(target: Target, count: int, mode: str) -> tuple[float, float]:
    """p50 latency and CPU per request, in ms, of ``count`` sequential requests."""
    figures = Figures()
    began = cpu_seconds(target.pid)
    uvloop.run(sequential(target.endpoint, count, MODES[mode], figures))
    cpu = (cpu_seconds(target.pid) - began) / (count + min(50, count))
    return percentile(figures.latency[mode], 50) * 1000, cpu * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=800)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with ExitStack() as stack:
        base = stack.enter_context(worktree(args.base))
        upstream = stack.enter_context(stub())
        targets = {}
        for name, src in ((args.base, base / "src"), ("this tree", ROOT / "src")):
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="deepwell-ab-")))
            targets[name] = stack.enter_context(server_of(src, upstream, work))
        for _ in range(args.rounds):
            for name, target in targets.items():
                for mode in MODES:
                    found = one_round(target, args.requests, mode)
                    results.setdefault((name, mode), []).append(found)
    print(f"{args.requests} sequential requests a round, {args.rounds} rounds, interleaved.\n")
    print("| tree | mode | p50 ms, median | p50 ms, best | CPU ms/request, median |")
    print("|---|---|---:|---:|---:|")
    for (name, mode), rounds in results.items():
        p50s, cpus = [r[0] for r in rounds], [r[1] for r in rounds]
        print(
            f"| {name} | {mode} | {statistics.median(p50s):.2f} | {min(p50s):.2f} "
            f"| {statistics.median(cpus):.2f} |"
        )


if __name__ == "__main__":
    main()
