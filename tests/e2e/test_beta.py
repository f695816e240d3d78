"""The ``/beta`` base against a real server: FIM completion and chat prefix completion."""

from __future__ import annotations

import ast
import json
import uuid

import httpx
import openai
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

MODEL = "deepseek-v4-flash"
FUNCTION = "def is_even(n: int) -> bool:\n"
AFTER = "\n\n\nassert is_even(4)\n"


def test_fim_fills_a_function_body(server: Server) -> None:
    response = server.client("/beta").completions.create(
        model=MODEL, prompt=FUNCTION, suffix=AFTER, max_tokens=32, temperature=0, seed=7
    )

    assert response.object == "text_completion"
    assert response.model == MODEL
    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    assert "return" in choice.text
    ast.parse(FUNCTION + choice.text + AFTER)
    usage = response.usage
    assert usage is not None
    extra = usage.model_extra or {}
    assert extra["prompt_cache_hit_tokens"] + extra["prompt_cache_miss_tokens"] == (
        usage.prompt_tokens
    )
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == extra["prompt_cache_hit_tokens"]
    assert 0 < usage.completion_tokens <= 32


def test_fim_stream_ends_with_done_and_usage(server: Server) -> None:
    body = {
        "model": MODEL,
        "prompt": FUNCTION,
        "suffix": AFTER,
        "max_tokens": 6,
        "temperature": 0,  # sampled, the answer may end at its first token
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST",
        f"{server.base_url}/beta/completions",
        json=body,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]

    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] in {"stop", "length"}
    assert 0 < last["usage"]["completion_tokens"] <= 6
    assert "".join(c["choices"][0]["text"] for c in chunks)


def test_fim_stream_through_the_sdk(server: Server) -> None:
    stream = server.client("/beta").completions.create(
        model=MODEL, prompt=FUNCTION, suffix=AFTER, max_tokens=4, stream=True, temperature=0
    )
    chunks = list(stream)

    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
    assert "".join(c.choices[0].text for c in chunks)


def test_echo_returns_the_prompt_with_logprobs(server: Server) -> None:
    response = server.client("/beta").completions.create(
        model=MODEL, prompt=FUNCTION, suffix=AFTER, max_tokens=4, echo=True, logprobs=2
    )

    choice = response.choices[0]
    assert choice.text.startswith(FUNCTION)
    assert len(choice.text) > len(FUNCTION)
    logprobs = choice.logprobs
    assert logprobs is not None
    assert logprobs.tokens is not None
    assert logprobs.token_logprobs is not None
    assert logprobs.top_logprobs is not None
    assert logprobs.text_offset is not None
    n = len(logprobs.tokens)
    assert n > 0
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == n
    assert len(logprobs.text_offset) == n
    assert logprobs.text_offset[0] == len(FUNCTION)
    assert logprobs.text_offset == sorted(logprobs.text_offset)
    for token, logprob, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        assert logprob <= 0
        assert token in top
        assert 1 <= len(top) <= 3


def test_fim_max_tokens_over_4096_is_a_400(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client("/beta").completions.create(
            model=MODEL, prompt=FUNCTION, suffix=AFTER, max_tokens=5000
        )
    assert "[1, 4096]" in caught.value.message


def test_fim_outside_beta_is_a_400_that_points_to_beta(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().completions.create(model=MODEL, prompt=FUNCTION, max_tokens=4)
    assert "/beta" in caught.value.message


def test_repeated_long_fim_prompt_hits_the_cache(server: Server) -> None:
    # A prompt of its own (several 64-token blocks), so the first request is a miss.
    header = f"# module {uuid.uuid4().hex}\n"
    body = "".join(f"def f{i}(x):\n    return x * {i} + {i * i}\n\n" for i in range(24))
    prompt = header + body + "def area(r: float) -> float:\n"
    client = server.client("/beta")

    def hits() -> tuple[int, int]:
        response = client.completions.create(
            model=MODEL, prompt=prompt, suffix="\n", max_tokens=1, temperature=0
        )
        assert response.usage is not None
        extra = response.usage.model_extra or {}
        details = response.usage.prompt_tokens_details
        assert details is not None
        assert details.cached_tokens == extra["prompt_cache_hit_tokens"]
        return extra["prompt_cache_hit_tokens"], response.usage.prompt_tokens

    first, prompt_tokens = hits()
    second, _ = hits()

    assert prompt_tokens > 256
    assert first == 0
    assert second >= prompt_tokens - 64
    assert second % 64 == 0


PREFIX_MESSAGES = [
    {"role": "user", "content": "Write a Python function that returns the square of x."},
    {"role": "assistant", "content": "```python\n", "prefix": True},
]


def test_prefix_completion_continues_the_code_block(server: Server) -> None:
    response = server.client("/beta").chat.completions.create(
        model=MODEL,
        messages=PREFIX_MESSAGES,  # type: ignore[arg-type]
        stop=["```"],
        max_tokens=40,
        temperature=0,
        extra_body={"thinking": {"type": "disabled"}},
    )

    content = response.choices[0].message.content
    assert content is not None
    assert "def " in content
    assert not content.lstrip().startswith("```")
    assert "python\n" not in content[:8]
    assert "```" not in content


def test_prefix_outside_beta_is_a_400_that_points_to_beta(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(
            model=MODEL,
            messages=PREFIX_MESSAGES,  # type: ignore[arg-type]
            max_tokens=4,
        )
    assert "/beta" in caught.value.message


def test_prefix_completion_in_thinking_mode_continues_the_reasoning(server: Server) -> None:
    start = {
        "role": "assistant",
        "content": "```python\n",
        "reasoning_content": "Simple: x*x.",
        "prefix": True,
    }
    response = server.client("/beta").chat.completions.create(
        model=MODEL,
        messages=[PREFIX_MESSAGES[0], start],  # type: ignore[list-item]
        stop=["```"],
        max_tokens=120,
        seed=7,
    )

    message = response.choices[0].message
    reasoning = (message.model_extra or {}).get("reasoning_content")
    assert isinstance(reasoning, str)
    assert not reasoning.startswith("Simple: x*x.")
    assert message.content is not None
    assert "```" not in message.content
    assert not message.content.startswith("python")
