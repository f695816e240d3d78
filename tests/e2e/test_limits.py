"""Limits end to end: 429 past an account's concurrency, 503 when the queue is full,
keep-alives while queued (and the official SDK reading through them), fair order
across accounts, and a graceful shutdown that settles every request.

The server has one engine sequence, so every request past the first one waits.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import (
    PLAIN,
    Server,
    create_key,
    deepwell_json,
    running_server,
    server_env,
)

pytestmark = pytest.mark.e2e

KEEPALIVE_S = "0.3"
# Greedy, the answer runs as long as any of these tests needs.
HELLO = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


@pytest.fixture(scope="module")
def one_sequence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("deepwell-limits")
    env = server_env(
        data_dir,
        DEEPWELL_ENGINE__N_SEQ_MAX="1",
        DEEPWELL_LIMITS__CONCURRENCY__PER_ACCOUNT="2",
        DEEPWELL_QUEUE__MAX_REQUESTS="3",
        DEEPWELL_QUEUE__KEEPALIVE_S=KEEPALIVE_S,
    )
    with running_server(data_dir, env) as running:
        yield running


def body(max_tokens: int, *, stream: bool) -> dict[str, Any]:
    return {
        "model": "deepseek-v4-flash",
        "messages": HELLO,
        "max_tokens": max_tokens,
        "temperature": 0,  # sampled, an answer may end before the test is through with it
        "stream": stream,
        **PLAIN,
    }


def sdk_body(max_tokens: int, *, stream: bool) -> dict[str, Any]:
    """``body`` as keyword arguments of the SDK (DeepSeek's fields go as ``extra_body``)."""
    fields = body(max_tokens, stream=stream)
    del fields["thinking"]
    return {**fields, "extra_body": PLAIN}


@contextmanager
def sdk(server: Server, key: str) -> Iterator[Any]:
    """The chat completions of an SDK client with ``key``, closed after use."""
    with openai.OpenAI(api_key=key, base_url=server.base_url, max_retries=0) as client:
        yield client.chat.completions


def raw_stream(server: Server, key: str, max_tokens: int, started: threading.Event) -> list[str]:
    """The lines of a streamed reply but blank ones, read as they come; ``started`` is set
    at the first line of data."""
    lines: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST",
        f"{server.base_url}/chat/completions",
        json=body(max_tokens, stream=True),
        headers=headers,
        timeout=120,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                started.set()
            if line:
                lines.append(line)
    return lines


def queued(server: Server) -> int:
    (queue,) = httpx.get(f"{server.base_url}/health", timeout=5).json()["queues"].values()
    waiting: int = queue["waiting"]
    return waiting


def wait_queued(server: Server, waiting: int) -> None:
    deadline = time.monotonic() + 30
    while queued(server) < waiting and time.monotonic() < deadline:
        time.sleep(0.05)


def stamped(work: Callable[[], Any]) -> Callable[[], tuple[Any, float]]:
    def run() -> tuple[Any, float]:
        result = work()
        return result, time.monotonic()

    return run


def test_limits_queue_and_keepalive(one_sequence: Server) -> None:
    server = one_sequence
    a, b, c, d = (create_key(server.env, name) for name in ("la", "lb", "lc", "ld"))
    running = threading.Event()
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(raw_stream, server, a, 40, running)
        assert running.wait(60)

        # A second request of account la waits, as a non-stream reply through the SDK.
        def sdk_waiting() -> Any:
            with sdk(server, a) as chat:
                return chat.with_raw_response.create(**sdk_body(8, stream=False))

        waiting_a: Future[tuple[Any, float]] = pool.submit(stamped(sdk_waiting))
        wait_queued(server, 1)

        # Its third is over the limit of 2.
        with sdk(server, a) as chat, pytest.raises(openai.RateLimitError) as limited:
            chat.create(**sdk_body(8, stream=False))
        message = limited.value.body["message"]  # type: ignore[index]
        assert "current concurrency is 3" in message
        assert "limit of 2" in message

        # Other accounts are queued: a stream through the SDK, a raw stream.
        def sdk_stream() -> list[Any]:
            with sdk(server, b) as chat:
                return list(chat.create(**sdk_body(8, stream=True)))

        streamed_b = pool.submit(stamped(sdk_stream))
        raw_c = pool.submit(stamped(lambda: raw_stream(server, c, 8, threading.Event())))
        wait_queued(server, 3)

        # The queue (3) is full: 503 at once.
        began = time.monotonic()
        with sdk(server, d) as chat, pytest.raises(openai.InternalServerError) as overloaded:
            chat.create(**sdk_body(8, stream=False))
        assert overloaded.value.status_code == 503
        assert time.monotonic() - began < 5

        first_lines = first.result(timeout=120)
        reply_a, done_a = waiting_a.result(timeout=120)
        chunks_b, done_b = streamed_b.result(timeout=120)
        lines_c, done_c = raw_c.result(timeout=120)

    assert first_lines[-1] == "data: [DONE]"
    # The non-stream reply that waited: blank lines first, then JSON the SDK parses.
    assert reply_a.http_response.text.startswith("\n")
    completion = reply_a.parse()
    assert completion.choices[0].message.content
    assert completion.usage.completion_tokens > 0
    # The SDK read its stream through the keep-alive comments.
    assert chunks_b[-1].choices[0].finish_reason in ("stop", "length")
    # The raw stream shows them: comments before the first data line.
    first_data = next(i for i, line in enumerate(lines_c) if line.startswith("data:"))
    assert ": keep-alive" in lines_c[:first_data]
    assert lines_c[-1] == "data: [DONE]"
    # Fair order: la had a request served already, so lb and lc went before its second.
    assert done_a > done_b
    assert done_a > done_c


def test_sigterm_lets_streams_end_and_settles_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir: Path = tmp_path_factory.mktemp("deepwell-drain")
    env = server_env(data_dir, DEEPWELL_ENGINE__N_SEQ_MAX="4", DEEPWELL_DRAIN_TIMEOUT_S="1")
    with running_server(data_dir, env) as server:
        key = create_key(env, "drained")
        started = [threading.Event() for _ in range(4)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            # Short ones finish within the drain; long ones are ended by it.
            streams = [
                pool.submit(raw_stream, server, key, tokens, event)
                for tokens, event in zip((4, 4, 400, 400), started, strict=True)
            ]
            for event in started:
                assert event.wait(60)
            server.process.send_signal(signal.SIGTERM)
            results = [stream.result(timeout=60) for stream in streams]
        assert server.process.wait(timeout=60) == 0
    for lines in results:
        assert lines[-1] == "data: [DONE]"
        last = [line for line in lines if line.startswith("data: {")][-1]
        assert '"finish_reason":"' in last.replace(" ", "") or '"error"' in last
    assert any('"error"' in lines[-2] for lines in results[2:])
    usage = deepwell_json(env, "usage", "--account", "drained")["usage"]
    assert sum(row["requests"] for row in usage) == 4
    (balance,) = deepwell_json(env, "accounts", "balance", "drained")["balances"]
    assert balance["held"] == "0.00"
