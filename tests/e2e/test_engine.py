"""The embedded engine under concurrency: batching, prefix sharing, cancellation."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import PLAIN, Server

pytestmark = pytest.mark.e2e

MODEL = "deepseek-v4-flash"
PROMPTS = [
    "Name a prime number.",
    "What color is the sky?",
    "Write one word about cats.",
    "What is 2 + 2?",
    "Name a fruit.",
    "Say hello in French.",
    "Name a planet.",
    "What is the capital of Italy?",
]


def _messages(prompt: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": prompt}]


async def _stream(
    client: openai.AsyncOpenAI, prompt: str, max_tokens: int
) -> tuple[str, str, int, int]:
    """(content, finish_reason, prompt_tokens, completion_tokens) of one streamed answer."""
    stream = await client.chat.completions.create(
        extra_body=PLAIN,
        model=MODEL,
        messages=_messages(prompt),
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
    )
    text, reason, usage = "", "", None
    async for chunk in stream:
        text += chunk.choices[0].delta.content or ""
        reason = chunk.choices[0].finish_reason or reason
        usage = chunk.usage or usage
    assert usage is not None
    return text, reason, usage.prompt_tokens, usage.completion_tokens


async def test_eight_concurrent_streams_match_one_at_a_time(server: Server) -> None:
    async with server.async_client() as client:
        alone = [await _stream(client, prompt, 24) for prompt in PROMPTS]
        together = await asyncio.gather(*(_stream(client, prompt, 24) for prompt in PROMPTS))

    for (_, reason, prompt_tokens, completion_tokens), single in zip(together, alone, strict=True):
        assert reason in {"stop", "length"}
        assert prompt_tokens == single[2]
        assert 0 < completion_tokens <= 24
    same = sum(a[0] == b[0] for a, b in zip(alone, together, strict=True))
    # llama.cpp's logits may differ slightly between batch shapes; nearly all must agree.
    assert same >= 7, [(a[0], b[0]) for a, b in zip(alone, together, strict=True)]


async def test_a_prompt_sharing_a_running_prefix_reuses_it(server: Server) -> None:
    # A fresh system prompt of several hundred tokens, so nothing is cached before.
    system = f"Session {secrets.token_hex(8)}. " + "You answer briefly and precisely. " * 120
    first: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Count to 50."},
    ]
    second: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Say yes."},
    ]
    before = server.engine_health()["prefix_reused_tokens"]

    async with server.async_client() as client:
        running = await client.chat.completions.create(
            extra_body=PLAIN,
            model=MODEL,
            messages=first,
            max_tokens=120,
            temperature=0,
            stream=True,
        )
        chunks = aiter(running)
        await anext(chunks)
        await anext(chunks)  # the first request is decoding now
        reply = await client.chat.completions.create(
            extra_body=PLAIN, model=MODEL, messages=second, max_tokens=4
        )
        async for _ in chunks:
            pass

    assert reply.usage is not None
    reused = server.engine_health()["prefix_reused_tokens"] - before
    assert reused >= 500
    assert (reply.usage.model_extra or {})["prompt_cache_hit_tokens"] >= 500
    assert reply.usage.prompt_tokens > 500


async def test_disconnecting_half_the_streams_frees_them(server: Server) -> None:
    body = {"model": MODEL, "max_tokens": 48, "stream": True, "temperature": 0, **PLAIN}
    headers = {"Authorization": f"Bearer {server.key}"}

    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:

        async def run(prompt: str, leave_early: bool) -> str | None:
            payload = {**body, "messages": _messages(prompt)}
            async with http.stream(
                "POST", "/chat/completions", json=payload, headers=headers
            ) as response:
                last = ""
                async for line in response.aiter_lines():
                    if leave_early and line.startswith("data: "):
                        return None  # closing the response drops the connection
                    last = line or last
                return last

        results = await asyncio.gather(*(run(p, i % 2 == 0) for i, p in enumerate(PROMPTS)))

    assert results[0::2] == [None] * 4
    assert all(last == "data: [DONE]" for last in results[1::2])
    assert server.busy_after_settling() == 0


async def test_health_answers_quickly_while_eight_streams_run(server: Server) -> None:
    async def probe() -> list[float]:
        await asyncio.sleep(1.0)  # let the streams start
        times: list[float] = []
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            for _ in range(5):
                started = time.perf_counter()
                response = await http.get("/health")
                times.append(time.perf_counter() - started)
                assert response.status_code == 200
                await asyncio.sleep(0.2)
        return times

    async with server.async_client() as client:
        streams = asyncio.gather(*(_stream(client, prompt, 32) for prompt in PROMPTS))
        _, times = await asyncio.gather(streams, probe())

    assert statistics.median(times) < 0.1, times
