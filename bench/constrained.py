"""Constrained decoding against plain decoding of the same prompts, through the API.

    .venv/bin/python bench/constrained.py [--max-tokens 160] [--reps 3]

Starts ``deepwell serve`` (four parallel sequences) and drives it with the official
``openai`` SDK: streaming, ``temperature`` 0, thinking disabled, a fixed
``max_tokens``. Three constrained modes, each against the same prompt without its
constraint:

- JSON mode: ``response_format`` ``json_object`` (plain: no ``response_format``);
- a forced call: ``tool_choice`` ``required``, one tool of five properties (plain: the
  same tool, ``tool_choice`` auto);
- a strict tool on the ``/beta`` base: ``strict`` true, ``tool_choice`` auto (plain: the
  same tool without ``strict``).

At concurrency 1 the constrained and the plain request take turns; at concurrency 4
two constrained and two plain streams run together (each group reported), and four
plain streams alone as the reference for what the constrained ones cost their
neighbours. Each prompt is cached by a warm-up request first.

Output tokens/s of a stream is its tokens after the first over the time from its
first token to its last. JSON mode streams every token as a content chunk, so both
are seen. A tool call arrives whole when it closes (and a bare call written as text
when its JSON object closes), so for the two tool modes the first token's time is the
request's start plus the time to first token of the same request, measured by three
``max_tokens`` 1 requests at concurrency 1 (median), and the last token's is the
stream's end. It prints a Markdown table of medians over all repetitions.

On two shared cores another llama.cpp process slows every step many times over: each
measurement first waits (``--wait`` seconds in all) until other processes use at most
``--quiet-limit`` cores, and one during which they used more is measured again (at most
``--redos`` in all); the last line says how quiet the kept measurements were.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Endpoint, deepwell_server

MODEL = "deepseek-v4-flash"
T = TypeVar("T")
JSON_PROMPT = (
    'Give a JSON object describing ten programming languages: a key "languages" with a list '
    "of objects, each with name, year, creator, paradigms and a two-sentence description."
)
TOOL_PROMPT = (
    "The login page of our web app returns a 500 error whenever the password contains a "
    "non-ASCII character such as é or ü. File a ticket for it with a thorough description "
    "of several paragraphs and at least ten steps to reproduce."
)
TICKET: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "file_ticket",
        "description": "File a bug ticket in the tracker.",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "description": "a short title"},
                "description": {"type": "string", "description": "what goes wrong, in detail"},
                "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                "steps": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "steps to reproduce",
                },
                "component": {"type": "string"},
            },
            "required": ["title", "description", "severity", "steps", "component"],
            "additionalProperties": False,
        },
    },
}


def strict(tool: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(tool)
    out["function"]["strict"] = True
    return out


@dataclass(frozen=True)
class Mode:
    name: str
    base: str  # "/v1" or "/beta"
    prompt: str
    constrained: dict[str, Any]
    plain: dict[str, Any]
    streamed: bool  # every token is a chunk of its own


MODES = (
    Mode("JSON mode", "/v1", JSON_PROMPT, {"response_format": {"type": "json_object"}}, {}, True),
    Mode(
        "forced tool call",
        "/v1",
        TOOL_PROMPT,
        {"tools": [TICKET], "tool_choice": "required"},
        {"tools": [TICKET]},
        False,
    ),
    Mode(
        "strict tool (/beta)",
        "/beta",
        TOOL_PROMPT,
        {"tools": [strict(TICKET)]},
        {"tools": [TICKET]},
        False,
    ),
)


@dataclass
class Sample:
    """One streamed request: when it started, its first and last output chunks, its end."""

    started: float
    first: float = float("nan")
    last: float = float("nan")
    ended: float = float("nan")
    tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    finish: str | None = None


def request(client: OpenAI, mode: Mode, constrained: bool, max_tokens: int) -> Sample:
    extra = mode.constrained if constrained else mode.plain
    sample = Sample(started=time.perf_counter())
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": mode.prompt}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"thinking": {"type": "disabled"}},
        **extra,
    )
    for chunk in stream:
        now = time.perf_counter()
        for choice in chunk.choices:
            if choice.delta.content or choice.delta.tool_calls:
                if math.isnan(sample.first):
                    sample.first = now
                sample.last = now
            sample.finish = choice.finish_reason or sample.finish
        if chunk.usage is not None:
            sample.ended = now
            sample.tokens = chunk.usage.completion_tokens
            sample.prompt_tokens = chunk.usage.prompt_tokens
            extra = chunk.usage.model_extra or {}  # DeepSeek's own usage field
            sample.cached_tokens = extra.get("prompt_cache_hit_tokens", 0)
    return sample


def streamed_rate(sample: Sample) -> float:
    return (sample.tokens - 1) / (sample.last - sample.first)


def ended_rate(sample: Sample, ttft: float) -> float:
    return (sample.tokens - 1) / (sample.ended - sample.started - ttft)


@dataclass
class Group:
    """The streams of one kind at one concurrency."""

    samples: list[Sample] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    check: list[float] = field(default_factory=list)  # JSON mode: the rate the tool modes use

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")

    @property
    def tokens(self) -> int:
        return round(statistics.median(s.tokens for s in self.samples)) if self.samples else 0


@dataclass
class Measured:
    mode: Mode
    ttft: dict[bool, float]  # constrained? -> seconds, concurrency 1, cached prompt
    c1: dict[bool, Group]
    c4: dict[bool, Group]  # two and two together
    alone: Group  # four plain streams


class Guard:
    """Other processes' CPU use while a measurement runs, from ``/proc`` (Linux): on two
    shared cores a second llama.cpp process slows every step many times over, so a
    measurement waits for a quiet machine and one that was not quiet is redone (within
    bounds: past them it is kept, and counted)."""

    def __init__(self, limit: float, redos: int, wait_s: float) -> None:
        self.limit = limit  # cores other processes may use
        self.redos = redos
        self.wait_s = wait_s
        self.redone = 0
        self.contended = 0
        self.waited = 0.0
        self.loads: list[float] = []

    def run(self, unit: Callable[[], T]) -> T:
        self._wait_quiet()
        while True:
            before = _cpu()
            out = unit()
            load = _foreign(before, _cpu())
            if load <= self.limit or self.redos == 0:
                self.loads.append(load)
                self.contended += load > self.limit
                return out
            self.redos -= 1
            self.redone += 1
            print(f"  other processes used {load:.2f} cores: measuring again", file=sys.stderr)
            self._wait_quiet()

    def _wait_quiet(self) -> None:
        while self.wait_s > 0:
            before = _cpu()
            time.sleep(1)
            self.wait_s -= 1
            self.waited += 1
            if _foreign(before, _cpu()) <= self.limit:
                return


def _cpu() -> tuple[float, float, float]:
    """(now, busy seconds of the machine, busy seconds of this process and its children)."""
    now = time.monotonic()
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return now, 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, _steal = fields
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:  # pid (comm) state ppid ... utime stime: fields 4, 14 and 15
                rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            stats[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    ours, mine = 0, {os.getpid()}
    for pid in sorted(stats):  # children have larger pids than their parents, as a rule
        if pid in mine or stats[pid][0] in mine:
            mine.add(pid)
            ours += stats[pid][1]
    tick = os.sysconf("SC_CLK_TCK")
    return now, (user + nice + system + irq + softirq) / tick, ours / tick


def _foreign(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores used by other processes between two ``_cpu`` readings."""
    wall = after[0] - before[0]
    return max(0.0, (after[1] - before[1]) - (after[2] - before[2])) / wall if wall else 0.0


def measure(client: OpenAI, mode: Mode, reps: int, max_tokens: int, guard: Guard) -> Measured:
    def probe() -> dict[bool, float]:
        out = {}
        for constrained in (True, False):
            request(client, mode, constrained, 1)  # warm-up: caches the prompt
            spans = [_span(request(client, mode, constrained, 1)) for _ in range(3)]
            out[constrained] = statistics.median(spans)
        return out

    ttft = guard.run(probe)

    def add(group: Group, sample: Sample, constrained: bool) -> None:
        group.samples.append(sample)
        by_end = ended_rate(sample, ttft[constrained])
        if mode.streamed:
            group.rates.append(streamed_rate(sample))
            group.check.append(by_end)
        else:
            group.rates.append(by_end)

    def together(pool: ThreadPoolExecutor, kinds: tuple[bool, ...]) -> list[Sample]:
        return list(pool.map(lambda k: request(client, mode, k, max_tokens), kinds))

    c1 = {True: Group(), False: Group()}
    c4 = {True: Group(), False: Group()}
    alone = Group()
    mixed = (True, False, True, False)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(reps):
            pair = guard.run(lambda: [request(client, mode, k, max_tokens) for k in (True, False)])
            for constrained, sample in zip((True, False), pair, strict=True):
                add(c1[constrained], sample, constrained)
            _progress("c=1", c1[True].rates[-1:], c1[False].rates[-1:], guard)
        for _ in range(reps):
            for constrained, sample in zip(
                mixed, guard.run(lambda: together(pool, mixed)), strict=True
            ):
                add(c4[constrained], sample, constrained)
            _progress("c=4 2+2", c4[True].rates[-2:], c4[False].rates[-2:], guard)
            for sample in guard.run(lambda: together(pool, (False,) * 4)):
                add(alone, sample, False)
            _progress("c=4 alone", [], alone.rates[-4:], guard)
    measured = Measured(mode, ttft, c1, c4, alone)
    report(measured)
    return measured


def _progress(what: str, constrained: list[float], plain: list[float], guard: Guard) -> None:
    rates = " ".join(f"{r:.1f}" for r in constrained) or "-"
    print(
        f"  {what:>9}: constrained {rates}, plain {' '.join(f'{r:.1f}' for r in plain)} "
        f"tok/s (other processes {guard.loads[-1]:.2f} cores)",
        file=sys.stderr,
    )


def _span(sample: Sample) -> float:
    return sample.ended - sample.started


def report(m: Measured) -> None:
    for level, groups in ((1, m.c1), (4, m.c4)):
        c, p = groups[True], groups[False]
        print(
            f"{m.mode.name:>20} c={level}: constrained {c.rate:.1f} tok/s "
            f"({c.tokens} tokens, {_finishes(c.samples)}), plain {p.rate:.1f} tok/s "
            f"({p.tokens} tokens, {_finishes(p.samples)}), ratio {c.rate / p.rate:.2f}"
            + (
                f"; by stream end {_median(c.check):.1f} / {_median(p.check):.1f}"
                if c.check
                else ""
            ),
            file=sys.stderr,
        )
    prompts = {s.prompt_tokens for g in (*m.c1.values(), *m.c4.values()) for s in g.samples}
    cached = [s.cached_tokens for g in m.c1.values() for s in g.samples]
    print(
        f"{'':>20}      plain alone {m.alone.rate:.1f} tok/s; TTFT {m.ttft[True] * 1000:.0f} / "
        f"{m.ttft[False] * 1000:.0f} ms; prompt tokens {sorted(prompts)}, cached {min(cached)}+",
        file=sys.stderr,
    )


def _finishes(samples: Iterable[Sample]) -> str:
    names = sorted({s.finish or "?" for s in samples})
    return "/".join(names)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(results: list[Measured]) -> str:
    rows = [
        "| mode | concurrency | constrained tok/s | plain tok/s | **constrained / plain** "
        "| plain alone tok/s | constrained / plain alone |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        c, p = m.c1[True].rate, m.c1[False].rate
        rows.append(f"| {m.mode.name} | 1 | {c:.1f} | {p:.1f} | **{c / p:.2f}x** | | |")
        c, p, a = m.c4[True].rate, m.c4[False].rate, m.alone.rate
        rows.append(
            f"| {m.mode.name} | 4 (2 + 2) | {c:.1f} | {p:.1f} | **{c / p:.2f}x** "
            f"| {a:.1f} | {c / a:.2f}x |"
        )
    return "\n".join(rows)


def ttft_line(results: list[Measured]) -> str:
    parts = [
        f"{m.mode.name} {m.ttft[True] * 1000:.0f} / {m.ttft[False] * 1000:.0f} ms" for m in results
    ]
    return "time to first token at concurrency 1, cached prompt (constrained / plain): " + (
        "; ".join(parts)
    )


def client_for(endpoint: Endpoint, base: str) -> OpenAI:
    return OpenAI(
        base_url=endpoint.base_url + base, api_key=endpoint.key, max_retries=0, timeout=600
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--modes", nargs="+", type=int, help="indices into the modes (0, 1, 2)")
    parser.add_argument(
        "--quiet-limit", type=float, default=0.1, help="cores other processes may use"
    )
    parser.add_argument("--redos", type=int, default=8, help="contended measurements redone")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for quiet")
    args = parser.parse_args()
    modes = [MODES[i] for i in args.modes] if args.modes else list(MODES)

    guard = Guard(args.quiet_limit, args.redos, args.wait)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepwell-bench-") as tmp:
        engine_env = {
            "DEEPWELL_ENGINE__N_CTX": "8192",
            "DEEPWELL_ENGINE__N_SEQ_MAX": "4",
            "DEEPWELL_ENGINE__N_THREADS": str(args.threads),
            "DEEPWELL_ENGINE__N_THREADS_BATCH": str(args.threads),
        }
        with deepwell_server(Path(tmp), engine_env) as endpoint:
            clients = {base: client_for(endpoint, base) for base in ("/v1", "/beta")}
            request(clients["/v1"], Mode("warm-up", "/v1", "Hi", {}, {}, True), False, 8)
            results = [
                measure(clients[m.base], m, args.reps, args.max_tokens, guard) for m in modes
            ]
    print(
        f"\nthreads={args.threads} parallel=4 max_tokens={args.max_tokens} reps={args.reps} "
        f"({time.perf_counter() - started:.0f} s)\n"
    )
    print(table(results))
    print(f"\n{ttft_line(results)}")
    print(
        f"\nother processes used at most {max(guard.loads):.2f} cores "
        f"(median {statistics.median(guard.loads):.2f}) during the measurements kept; "
        f"{guard.redone} redone, {guard.contended} kept above {args.quiet_limit} cores; "
        f"{guard.waited:.0f} s waited for quiet"
    )


if __name__ == "__main__":
    main()
