"""Usage arithmetic."""

from __future__ import annotations

import pytest

from deepwell.core.events import Usage


@pytest.mark.parametrize(
    ("prompt", "completion", "hit"),
    [(0, 0, 0), (10, 5, 0), (10, 5, 10), (1000, 1, 640)],
)
def test_usage_arithmetic(prompt: int, completion: int, hit: int) -> None:
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, cache_hit_tokens=hit)
    assert usage.cache_hit_tokens + usage.cache_miss_tokens == prompt
    assert usage.cache_miss_tokens == prompt - hit
    assert usage.total_tokens == prompt + completion


def test_usage_defaults() -> None:
    usage = Usage(prompt_tokens=7, completion_tokens=3)
    assert usage.cache_hit_tokens == 0
    assert usage.cache_miss_tokens == 7
    assert usage.reasoning_tokens == 0
    assert usage.total_tokens == 10
