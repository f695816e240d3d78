"""The FIM wire format: request → core, and completion events → text_completion objects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from pydantic import ValidationError

from deepwell.core.completion import CompletionEvent, CompletionLogprob, CompletionText
from deepwell.core.events import Finished, Started, Usage
from deepwell.dialects.completions import (
    ChunkEncoder,
    CompletionRequest,
    collect,
    logprobs,
    to_request,
)
from deepwell.errors import EngineFailure
from deepwell.vocabulary import Sampling

STARTED = Started(
    id="cmpl-1", model="deepseek-v4-flash", created=1_750_000_000, thinking=False, fingerprint="fp"
)
USAGE = Usage(prompt_tokens=130, completion_tokens=3, cache_hit_tokens=128)
WIRE_USAGE = {
    "prompt_tokens": 130,
    "completion_tokens": 3,
    "total_tokens": 133,
    "prompt_tokens_details": {"cached_tokens": 128},
    "completion_tokens_details": {"reasoning_tokens": 0},
    "prompt_cache_hit_tokens": 128,
    "prompt_cache_miss_tokens": 2,
}
A = CompletionLogprob("a", -0.25, 0, (("a", -0.25), ("b", -2.0)))
B = CompletionLogprob("b", -1.5, 1, (("c", -0.5),))


def body(**fields: Any) -> CompletionRequest:
    fields.setdefault("model", "deepseek-v4-flash")
    fields.setdefault("prompt", "def f(x):\n")
    return CompletionRequest.model_validate(fields)


async def aiter_of(events: Iterable[CompletionEvent]) -> AsyncIterator[CompletionEvent]:
    for event in events:
        yield event


# -- wire → core ---------------------------------------------------------------------


def test_defaults() -> None:
    request = to_request(body())
    assert request.model == "deepseek-v4-flash"
    assert request.prompt == "def f(x):\n"
    assert request.suffix == ""
    assert request.max_tokens is None
    assert request.sampling == Sampling(temperature=1.0, top_p=1.0, seed=None)
    assert request.stop == ()
    assert request.echo is False
    assert request.logprobs is None
    assert request.thinking is None


def test_every_field() -> None:
    request = to_request(
        body(
            suffix="    return y\n",
            max_tokens=64,
            echo=True,
            logprobs=0,
            stop=["\n\n", "def "],
            temperature=0,
            top_p=0.9,
            seed=11,
            thinking={"type": "disabled"},
            frequency_penalty=1,
            presence_penalty=-1,
            best_of=3,
        )
    )
    assert request.suffix == "    return y\n"
    assert request.max_tokens == 64
    assert request.echo is True
    assert request.logprobs == 0
    assert request.stop == ("\n\n", "def ")
    assert request.sampling == Sampling(temperature=0.0, top_p=0.9, seed=11)
    assert request.thinking is False


def test_single_stop_string_and_null_fields() -> None:
    request = to_request(body(stop="\n", suffix=None, echo=None, stream=None))
    assert request.stop == ("\n",)
    assert request.suffix == ""
    assert request.echo is False


def test_continues_stops_and_tabbys_fields() -> None:
    """Continue sends 8 stops, DeepSeek's special tokens among them; Tabby a null
    suffix and ``presence_penalty``."""
    # DeepSeek's tokens are written with full-width bars.
    specials = ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"]  # noqa: RUF001
    stops = [*specials[:3], "//", specials[3], "/src/", "#- coding: utf-8", "```"]
    assert to_request(body(stop=stops, temperature=0.01, max_tokens=4096)).stop == tuple(stops)
    tabby = to_request(body(suffix=None, presence_penalty=0.0, stream=True))
    assert tabby.suffix == ""


def test_include_usage() -> None:
    assert body(stream=True, stream_options={"include_usage": True}).include_usage is True
    assert body(stream=True).include_usage is False


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": None},
        {"prompt": 12},
        {"prompt": ["a", "b"]},
        {"suffix": 3},
        {"logprobs": 21},
        {"logprobs": -1},
        {"temperature": 2.5},
        {"top_p": 1.5},
        {"stop": [1]},
        {"max_tokens": "many"},
        {"thinking": {"type": "sometimes"}},
    ],
)
def test_wrong_shapes_are_validation_errors(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        body(**fields)


def test_model_and_prompt_are_required() -> None:
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"prompt": "x"})
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "deepseek-v4-flash"})


# -- core → wire ---------------------------------------------------------------------


def test_logprobs_shape_includes_the_chosen_token_among_the_top() -> None:
    assert logprobs([A, B]) == {
        "tokens": ["a", "b"],
        "token_logprobs": [-0.25, -1.5],
        "top_logprobs": [{"a": -0.25, "b": -2.0}, {"c": -0.5, "b": -1.5}],
        "text_offset": [0, 1],
    }
    assert logprobs([]) == {
        "tokens": [],
        "token_logprobs": [],
        "top_logprobs": [],
        "text_offset": [],
    }


async def test_collect() -> None:
    events: list[CompletionEvent] = [
        STARTED,
        CompletionText("x = "),
        CompletionText("1"),
        Finished("stop", USAGE),
    ]
    result = await collect(aiter_of(events), with_logprobs=False)
    assert result == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1_750_000_000,
        "model": "deepseek-v4-flash",
        "system_fingerprint": "fp",
        "choices": [{"index": 0, "text": "x = 1", "logprobs": None, "finish_reason": "stop"}],
        "usage": WIRE_USAGE,
    }


async def test_collect_with_logprobs() -> None:
    events: list[CompletionEvent] = [
        STARTED,
        CompletionText("a", (A,)),
        CompletionText("b", (B,)),
        Finished("length", USAGE),
    ]
    result = await collect(aiter_of(events), with_logprobs=True)
    choice = result["choices"][0]
    assert choice["text"] == "ab"
    assert choice["finish_reason"] == "length"
    assert choice["logprobs"] == logprobs([A, B])


async def test_collect_with_logprobs_and_no_tokens() -> None:
    result = await collect(aiter_of([STARTED, Finished("stop", USAGE)]), with_logprobs=True)
    assert result["choices"][0]["text"] == ""
    assert result["choices"][0]["logprobs"] == logprobs([])


async def test_collect_without_finish_is_an_engine_failure() -> None:
    with pytest.raises(EngineFailure):
        await collect(aiter_of([STARTED, CompletionText("a")]), with_logprobs=False)


def test_chunks() -> None:
    encoder = ChunkEncoder(include_usage=False, with_logprobs=False)
    assert encoder.encode(STARTED) is None
    first = encoder.encode(CompletionText("def"))
    last = encoder.encode(Finished("stop", USAGE))
    assert first == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1_750_000_000,
        "model": "deepseek-v4-flash",
        "system_fingerprint": "fp",
        "choices": [{"index": 0, "text": "def", "logprobs": None, "finish_reason": None}],
    }
    assert last is not None
    assert last["choices"] == [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]
    assert last["usage"] == WIRE_USAGE


def test_chunks_with_include_usage_and_logprobs() -> None:
    encoder = ChunkEncoder(include_usage=True, with_logprobs=True)
    encoder.encode(STARTED)
    first = encoder.encode(CompletionText("a", (A,)))
    last = encoder.encode(Finished("stop", USAGE))
    assert first is not None
    assert last is not None
    assert first["usage"] is None
    assert first["choices"][0]["logprobs"] == logprobs([A])
    assert last["choices"][0]["logprobs"] == logprobs([])
    assert last["usage"] == WIRE_USAGE
