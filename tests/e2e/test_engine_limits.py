"""The embedded engine at the edge of its KV cache, driven in-process on the real model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deepwell.engine.base import Done, EngineRequest
from deepwell.engine.llamacpp.engine import LlamaCppEngine
from deepwell.models.sources import ensure_model_file
from deepwell.settings import BackingModel, EngineSettings
from deepwell.vocabulary import Sampling

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    return ensure_model_file("default", BackingModel(), folder, progress=False)


@pytest.fixture
async def small_engine(model_file: Path) -> AsyncIterator[LlamaCppEngine]:
    """Two sequences sharing 256 KV cells, no saved-prefix cache."""
    settings = EngineSettings(n_ctx=256, n_seq_max=2, n_batch=256, n_ubatch=256)
    engine = LlamaCppEngine("default", model_file, settings, context_length=256)
    yield engine
    await engine.close()


async def _finish(engine: LlamaCppEngine, prompt: tuple[int, ...], max_tokens: int) -> Done:
    request = EngineRequest(prompt, max_tokens, Sampling(temperature=0), namespace="limits")
    async for event in engine.generate(request):
        if isinstance(event, Done):
            return event
    raise AssertionError("no Done event")


def _prompt(engine: LlamaCppEngine, words: int, seed: int) -> tuple[int, ...]:
    text = " ".join(f"word{seed}x{i}" for i in range(words))
    return tuple(engine.tokenize(text, special=False))[:100]


async def test_a_full_kv_cache_ends_one_sequence_and_spares_the_other(
    small_engine: LlamaCppEngine,
) -> None:
    first, second = _prompt(small_engine, 60, 1), _prompt(small_engine, 60, 2)

    done = await asyncio.gather(
        _finish(small_engine, first, 150), _finish(small_engine, second, 150)
    )

    reasons = sorted(d.reason for d in done)
    assert "insufficient_system_resource" in reasons
    assert all(d.completion_tokens > 0 for d in done)
    health = await small_engine.health()
    assert health.sequences_busy == 0
    assert health.state == "ready"


async def test_work_waits_for_room_instead_of_failing(small_engine: LlamaCppEngine) -> None:
    prompts = [_prompt(small_engine, 60, seed) for seed in range(3, 7)]

    done = await asyncio.gather(*(_finish(small_engine, p, 8) for p in prompts))

    assert [d.reason for d in done] == ["length"] * 4
    assert all(d.completion_tokens == 8 for d in done)
