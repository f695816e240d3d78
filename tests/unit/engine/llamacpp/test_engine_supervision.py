"""The embedded engine outlives a failing engine thread: it ends what that thread held and
rebuilds it, on the real model."""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from deepwell.engine.base import Done, EngineRequest
from deepwell.engine.llamacpp import engine as engine_module
from deepwell.engine.llamacpp import scheduler as scheduler_module
from deepwell.engine.llamacpp.engine import LlamaCppEngine
from deepwell.engine.llamacpp.sampler import build_chain
from deepwell.errors import ConfigurationError, EngineFailure, Overloaded
from deepwell.models.sources import ensure_model_file
from deepwell.settings import BackingModel, EngineSettings
from deepwell.vocabulary import Sampling

# Eight tokens take more than three steps, so the first requests meet the failing step
# and a request after the rebuild would meet it too, if the hook fired again.
FAIL_AT_STEP = 3
TOKENS = 8
ENDED = "insufficient_system_resource"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    return ensure_model_file("default", BackingModel(), folder, progress=False)


@dataclass
class Fatal:
    """An ``on_fatal`` that records what it is told."""

    errors: list[BaseException] = field(default_factory=list)
    called: threading.Event = field(default_factory=threading.Event)

    def __call__(self, error: BaseException) -> None:
        self.errors.append(error)
        self.called.set()


@pytest.fixture
def fatal() -> Fatal:
    return Fatal()


@pytest.fixture
async def engine(model_file: Path, fatal: Fatal) -> AsyncIterator[LlamaCppEngine]:
    """Two sequences on a small context, failing at step ``FAIL_AT_STEP``."""
    settings = EngineSettings(
        n_ctx=512, n_seq_max=2, n_batch=64, n_ubatch=64, fail_at_step=FAIL_AT_STEP
    )
    engine = LlamaCppEngine("default", model_file, settings, context_length=512, on_fatal=fatal)
    yield engine
    await engine.close()


@pytest.fixture
def contexts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The llama.cpp contexts freed, as they are freed."""
    freed: list[int] = []
    free = llama_cpp.llama_free

    def record(ctx: Any) -> None:
        freed.append(ctx)
        free(ctx)

    monkeypatch.setattr(llama_cpp, "llama_free", record)
    return freed


@pytest.fixture
def chains(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """The sampler chains built for requests, and those freed."""
    built: list[int] = []
    freed: list[int] = []
    free = llama_cpp.llama_sampler_free

    def record_build(sampling: Sampling) -> Any:
        chain = build_chain(sampling)
        built.append(ctypes.addressof(chain.contents))
        return chain

    def record_free(chain: Any) -> None:
        freed.append(ctypes.addressof(chain.contents))
        free(chain)

    monkeypatch.setattr(engine_module, "build_chain", record_build)
    monkeypatch.setattr(llama_cpp, "llama_sampler_free", record_free)
    return built, freed


def gated_contexts(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """From now on, creating a context waits until the returned event is set."""
    release = threading.Event()
    create = scheduler_module._new_context

    def gated(*args: Any) -> Any:
        release.wait(timeout=60)
        return create(*args)

    monkeypatch.setattr(scheduler_module, "_new_context", gated)
    return release


def refused_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, llama.cpp cannot create a context."""

    def refuse(*args: Any) -> Any:
        raise ConfigurationError("llama.cpp could not create a context")

    monkeypatch.setattr(scheduler_module, "_new_context", refuse)


async def finish(engine: LlamaCppEngine, words: str = "one two three") -> Done:
    prompt = tuple(engine.tokenize(f"Count on: {words}", special=False))
    request = EngineRequest(prompt, TOKENS, Sampling(temperature=0))
    async for event in engine.generate(request):
        if isinstance(event, Done):
            return event
    raise AssertionError("no Done event")


async def test_a_failed_step_ends_its_sequences_and_the_engine_rebuilds_itself(
    engine: LlamaCppEngine, contexts: list[int], chains: tuple[list[int], list[int]]
) -> None:
    ended = await asyncio.gather(finish(engine, "one two"), finish(engine, "red green"))

    assert [d.reason for d in ended] == [ENDED, ENDED]
    again = await finish(engine)
    assert again.reason in {"stop", "length"}
    assert again.completion_tokens > 0
    health = await engine.health()
    assert (health.state, health.restarts, health.sequences_busy) == ("ready", 1, 0)
    assert len(contexts) == 1  # the failed scheduler's, and only it
    built, freed = chains
    assert len(built) == 3
    assert sorted(freed) == sorted(built)


async def test_requests_during_the_rebuild_wait_for_it(
    engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = gated_contexts(monkeypatch)
    try:
        assert (await finish(engine)).reason == ENDED
        assert (await engine.health()).state == "restarting"
        waiting = asyncio.create_task(finish(engine))
        await asyncio.sleep(0.3)
        assert not waiting.done()
    finally:
        release.set()

    assert (await waiting).reason in {"stop", "length"}
    assert (await engine.health()).restarts == 1


async def test_a_wait_for_the_rebuild_is_bounded(
    engine: LlamaCppEngine,
    chains: tuple[list[int], list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = gated_contexts(monkeypatch)
    monkeypatch.setattr(engine_module, "REBUILD_WAIT_S", 0.2)
    try:
        assert (await finish(engine)).reason == ENDED
        with pytest.raises(Overloaded):
            await finish(engine)
    finally:
        release.set()

    monkeypatch.setattr(engine_module, "REBUILD_WAIT_S", 60.0)
    assert (await finish(engine)).reason in {"stop", "length"}
    built, freed = chains
    assert len(built) == 3
    assert sorted(freed) == sorted(built)  # the refused request's too


async def test_a_failed_rebuild_is_fatal(
    engine: LlamaCppEngine, fatal: Fatal, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused_contexts(monkeypatch)

    assert (await finish(engine)).reason == ENDED
    assert await asyncio.to_thread(fatal.called.wait, 30)

    assert [type(e) for e in fatal.errors] == [ConfigurationError]
    health = await engine.health()
    assert (health.state, health.restarts) == ("failed", 0)
    with pytest.raises(EngineFailure):
        await finish(engine)
