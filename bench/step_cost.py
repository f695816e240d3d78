"""What a step of llama.cpp costs by the number of tokens it reads: the ceiling of
prompt-lookup speculation on this machine.

    .venv/bin/python bench/step_cost.py [--threads 2] [--context 400] [--repeats 12]

Loads the default model with ``llama-cpp-python`` (the build deepwell runs), reads a
``--context``-token prompt, then times ``llama_decode`` of n tokens after it, each with
its logits (as a verification step has), for n from 1 to 32: the median of
``--repeats``. A draft of n - 1 tokens all taken gives n tokens for one step, so
``n / step`` is the most tokens/s speculation can reach with drafts of that size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import llama_cpp

from deepwell.models.sources import ensure_model_file
from deepwell.settings import BackingModel

SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 32)


class Model:
    """One llama.cpp context on one sequence, and a batch to fill."""

    def __init__(self, path: Path, threads: int) -> None:
        llama_cpp.llama_backend_init()
        self._model = llama_cpp.llama_model_load_from_file(
            str(path).encode(), llama_cpp.llama_model_default_params()
        )
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = 4096, 512, 512
        params.n_threads = params.n_threads_batch = threads
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch: Any = llama_cpp.llama_batch_init(512, 0, 1)

    def decode(self, tokens: list[int], start: int, *, all_logits: bool) -> float:
        """Read ``tokens`` at positions from ``start``; the seconds ``llama_decode`` took."""
        llama_cpp.llama_memory_seq_rm(self._memory, 0, start, -1)
        batch = self._batch
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i] = token, start + i
            batch.n_seq_id[i], batch.seq_id[i][0] = 1, 0
            batch.logits[i] = all_logits or i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        began = time.perf_counter()
        if llama_cpp.llama_decode(self._ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--context", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deepwell-bench-") as tmp:
        path = ensure_model_file("default", BackingModel(), Path(tmp), progress=False)
        model = Model(path, args.threads)
        model.decode([100 + (i * 7) % 5000 for i in range(args.context)], 0, all_logits=False)
        print(f"threads={args.threads} context={args.context}\n", file=sys.stderr)
        print("| tokens in the step | step ms | ms per token | ceiling tok/s | vs n = 1 |")
        print("|---:|---:|---:|---:|---:|")
        single = 0.0
        for n in SIZES:
            tokens = [200 + j for j in range(n)]
            times = [
                model.decode(tokens, args.context, all_logits=True) for _ in range(args.repeats)
            ]
            step = statistics.median(times[2:])
            single = single or step
            print(
                f"| {n} | {step * 1000:.1f} | {step * 1000 / n:.1f} | {n / step:.1f} | "
                f"{n * single / step:.2f}x |"
            )


if __name__ == "__main__":
    main()
