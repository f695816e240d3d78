"""What both wire formats share: usage, the envelope, and where usage goes in a stream."""

from __future__ import annotations

import pytest

from deepwell.core.events import Started, Usage
from deepwell.dialects.common import chunk, response, usage

STARTED = Started(
    id="cmpl-1", model="deepseek-v4-flash", created=1_750_000_000, thinking=False, fingerprint="fp"
)
USAGE = Usage(prompt_tokens=30, completion_tokens=4, cache_hit_tokens=12)
CHOICE = {"index": 0, "text": "hi", "finish_reason": None}


def test_usage_object() -> None:
    assert usage(USAGE) == {
        "prompt_tokens": 30,
        "completion_tokens": 4,
        "total_tokens": 34,
        "prompt_tokens_details": {"cached_tokens": 12},
        "completion_tokens_details": {"reasoning_tokens": 0},
        "prompt_cache_hit_tokens": 12,
        "prompt_cache_miss_tokens": 18,
    }


@pytest.mark.parametrize(("prompt", "hit"), [(0, 0), (5, 0), (5, 5), (100, 64)])
def test_usage_hit_plus_miss_is_prompt(prompt: int, hit: int) -> None:
    out = usage(Usage(prompt_tokens=prompt, completion_tokens=1, cache_hit_tokens=hit))
    assert out["prompt_cache_hit_tokens"] + out["prompt_cache_miss_tokens"] == prompt
    assert out["prompt_tokens_details"]["cached_tokens"] == hit
    assert out["total_tokens"] == prompt + 1


def test_response_is_the_envelope_one_choice_and_usage() -> None:
    assert response(STARTED, "kind", CHOICE, USAGE) == {
        "id": "cmpl-1",
        "object": "kind",
        "created": 1_750_000_000,
        "model": "deepseek-v4-flash",
        "system_fingerprint": "fp",
        "choices": [CHOICE],
        "usage": usage(USAGE),
    }


@pytest.mark.parametrize(
    ("used", "include_usage", "expected"),
    [
        (None, False, "absent"),
        (None, True, None),
        (USAGE, False, usage(USAGE)),
        (USAGE, True, usage(USAGE)),
    ],
)
def test_chunk_carries_usage_only_where_it_belongs(
    used: Usage | None, include_usage: bool, expected: object
) -> None:
    out = chunk(STARTED, "kind", CHOICE, used=used, include_usage=include_usage)
    assert out["object"] == "kind"
    assert out["choices"] == [CHOICE]
    assert out.get("usage", "absent") == expected
