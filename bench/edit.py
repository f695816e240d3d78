"""Single-stream edits that copy their input: prompt-lookup speculation against plain
decoding and against llama-server.

    .venv/bin/python bench/edit.py [--runs 3]

Two tasks at temperature 0, one stream at a time: "return this function with one
identifier renamed" through chat, and a FIM completion inside a repetitive file
(deepwell's ``/beta/completions``, llama-server's ``/infill``). deepwell runs twice,
with speculation (the default) and without (``DEEPWELL_ENGINE__SPECULATE=false``);
``llama-server`` runs as shipped, without a draft model. Prints output tokens/s (the
median of ``--runs``, counted from the first token) per server and task, the ratios, and
whether deepwell's output is the same with speculation on and off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MODEL_FILE, Endpoint, deepwell_server, llama_server

FUNCTION = '''def summarize_orders(orders, currency, discount_rate):
    """Totals, averages and the largest order of a list of orders."""
    if not orders:
        return {"count": 0, "total": 0.0, "average": 0.0, "largest": None}
    total = 0.0
    largest = None
    for order in orders:
        amount = order["quantity"] * order["unit_price"]
        if order.get("coupon"):
            amount = amount * (1 - discount_rate)
        if order["currency"] != currency:
            amount = convert(amount, order["currency"], currency)
        total += amount
        if largest is None or amount > largest["amount"]:
            largest = {"id": order["id"], "amount": amount}
    average = total / len(orders)
    return {
        "count": len(orders),
        "total": round(total, 2),
        "average": round(average, 2),
        "largest": largest,
        "currency": currency,
    }
'''
EDIT = (
    "Return this Python function with the variable `amount` renamed to `value`. "
    "Output only the code.\n\n```python\n" + FUNCTION + "```"
)
HANDLERS = "".join(
    f"def handle_{name}(request):\n"
    f"    user = authenticate(request)\n"
    f"    payload = parse_{name}(request.body)\n"
    f"    result = service.{name}(user, payload)\n"
    f"    log.info('{name} done for %s', user.id)\n"
    f"    return respond(result)\n\n\n"
    for name in ("create", "update", "delete", "archive", "restore")
)
FIM_PREFIX = HANDLERS + "def handle_export(request):\n"
FIM_SUFFIX = "\n\n\ndef handle_import(request):\n    user = authenticate(request)\n"


@dataclass
class Run:
    text: str
    tokens: int
    first: float
    last: float

    @property
    def tokens_per_s(self) -> float:
        return (self.tokens - 1) / (self.last - self.first) if self.last > self.first else 0.0


def stream(url: str, body: dict[str, Any], key: str, text_of: Callable[[Any], str]) -> Run:
    """One streamed request; each data line with text counts as one token."""
    pieces: list[str] = []
    times: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(timeout=900) as client,
        client.stream("POST", url, json=body, headers=headers) as response,
    ):
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            text = text_of(json.loads(line.removeprefix("data: ")))
            if text:
                pieces.append(text)
                times.append(time.perf_counter())
    return Run("".join(pieces), len(pieces), times[0], times[-1])


def chat_text(chunk: Any) -> str:
    choices = chunk.get("choices") or [{}]
    return str((choices[0].get("delta") or {}).get("content") or "")


def completion_text(chunk: Any) -> str:
    choices = chunk.get("choices") or [{}]
    return str(choices[0].get("text") or "")


def infill_text(chunk: Any) -> str:
    return str(chunk.get("content") or "")


def tasks(endpoint: Endpoint, max_tokens: int) -> dict[str, Callable[[], Run]]:
    chat = {
        "model": endpoint.model,
        "messages": [{"role": "user", "content": EDIT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "thinking": {"type": "disabled"},
    }
    base = endpoint.base_url
    if endpoint.name == "llama-server":
        fim_url = f"{base}/infill"
        fim = {
            "input_prefix": FIM_PREFIX,
            "input_suffix": FIM_SUFFIX,
            "n_predict": max_tokens // 3,
            "temperature": 0,
            "stream": True,
        }
        fim_text = infill_text
    else:
        fim_url = f"{base}/beta/completions"
        fim = {
            "model": endpoint.model,
            "prompt": FIM_PREFIX,
            "suffix": FIM_SUFFIX,
            "max_tokens": max_tokens // 3,
            "temperature": 0,
            "stream": True,
        }
        fim_text = completion_text
    return {
        "rename (chat)": lambda: stream(
            f"{base}/v1/chat/completions", chat, endpoint.key, chat_text
        ),
        "FIM in a repetitive file": lambda: stream(fim_url, fim, endpoint.key, fim_text),
    }


def measure(endpoint: Endpoint, runs: int, max_tokens: int) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for name, task in tasks(endpoint, max_tokens).items():
        task()  # warm: the prompt's KV, first allocations
        out[name] = [task() for _ in range(runs)]
        speed = statistics.median(run.tokens_per_s for run in out[name])
        print(f"{endpoint.name:>22} {name}: {speed:.1f} tok/s", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=420)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    results: dict[str, dict[str, list[Run]]] = {}
    with tempfile.TemporaryDirectory(prefix="deepwell-bench-") as tmp:
        data_dir = Path(tmp)
        base_env = {
            "DEEPWELL_ENGINE__N_CTX": "4096",
            "DEEPWELL_ENGINE__N_THREADS": str(args.threads),
            "DEEPWELL_ENGINE__N_THREADS_BATCH": str(args.threads),
            "DEEPWELL_LOG_LEVEL": "warning",
        }
        for label, speculate in (("deepwell", "true"), ("deepwell, no speculation", "false")):
            env = {**base_env, "DEEPWELL_ENGINE__SPECULATE": speculate}
            with deepwell_server(data_dir, env) as endpoint:
                endpoint.name = label
                results[label] = measure(endpoint, args.runs, args.max_tokens)
        peer_args = ["-t", str(args.threads), "-tb", str(args.threads), "-c", "4096", "--jinja"]
        model = data_dir / "models" / MODEL_FILE
        with llama_server(model, peer_args, data_dir / "llama-server.log") as endpoint:
            results["llama-server"] = measure(endpoint, args.runs, args.max_tokens)
    report(results)


def report(results: dict[str, dict[str, list[Run]]]) -> None:
    tasks_ = list(results["deepwell"])
    print(
        "| task | deepwell tok/s | no speculation tok/s | llama-server tok/s | vs llama-server |"
        " same output on/off |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for task in tasks_:
        speeds = {
            name: statistics.median(run.tokens_per_s for run in runs[task])
            for name, runs in results.items()
        }
        same = (
            results["deepwell"][task][0].text == results["deepwell, no speculation"][task][0].text
        )
        ratio = speeds["deepwell"] / speeds["llama-server"]
        print(
            f"| {task} | {speeds['deepwell']:.1f} | {speeds['deepwell, no speculation']:.1f} | "
            f"{speeds['llama-server']:.1f} | **{ratio:.2f}x** | {'yes' if same else 'NO'} |"
        )
    print(
        "\ngoal: >= 1.5x llama-server's output tok/s, the same output with and without speculation"
    )


if __name__ == "__main__":
    main()
