"""Prompt-lookup speculation on the real model: the output is the same with it on and
off, guesses are taken when the output copies the prompt, and constraints still hold."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from deepwell.engine.base import Constraint, Done, EngineRequest, Piece
from deepwell.engine.llamacpp.engine import LlamaCppEngine
from deepwell.models.sources import ensure_model_file
from deepwell.settings import BackingModel, EngineSettings
from deepwell.vocabulary import Sampling

CODE = """def total_price(items, tax_rate):
    subtotal = 0
    for item in items:
        subtotal += item.price * item.quantity
    tax = subtotal * tax_rate
    return subtotal + tax
"""
EDIT = (
    "<|im_start|>user\nRepeat this function exactly, renaming `subtotal` to `net`:\n\n"
    f"{CODE}<|im_end|>\n<|im_start|>assistant\n"
)
HANDLERS = "".join(
    f"def handle_{name}(request):\n"
    f"    user = authenticate(request)\n"
    f"    payload = parse_{name}(request.body)\n"
    f"    result = service.{name}(user, payload)\n"
    f"    log.info('{name} done for %s', user.id)\n"
    f"    return respond(result)\n\n\n"
    for name in ("create", "update", "delete", "archive", "restore")
)
# A fill-in-the-middle whose answer, picked one token at a time, meets two best tokens
# 0.06 apart (in logits) at its 90th token: close enough for speculation to part there.
FIM = (
    f"<|fim_prefix|>{HANDLERS}def handle_export(request):\n<|fim_suffix|>\n\n\n"
    "def handle_import(request):\n    user = authenticate(request)\n<|fim_middle|>"
)
GREEDY = Sampling(temperature=0)
TIE = 0.1


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    return ensure_model_file("default", BackingModel(), folder, progress=False)


async def engine_with(model_file: Path, *, speculate: bool) -> LlamaCppEngine:
    settings = EngineSettings(n_ctx=2048, n_seq_max=2, n_batch=256, speculate=speculate)
    return LlamaCppEngine("default", model_file, settings, context_length=2048)


@pytest.fixture
async def speculating(model_file: Path) -> AsyncIterator[LlamaCppEngine]:
    engine = await engine_with(model_file, speculate=True)
    yield engine
    await engine.close()


@pytest.fixture
async def plain(model_file: Path) -> AsyncIterator[LlamaCppEngine]:
    engine = await engine_with(model_file, speculate=False)
    yield engine
    await engine.close()


async def generate(engine: LlamaCppEngine, request: EngineRequest) -> tuple[str, Done]:
    text = []
    async for event in engine.generate(request):
        if isinstance(event, Piece):
            text.append(event.text)
        elif isinstance(event, Done):
            return "".join(text), event
    raise AssertionError("no Done")


def edit(engine: LlamaCppEngine, max_tokens: int = 80, text: str = EDIT) -> EngineRequest:
    prompt = tuple(engine.tokenize(text, special=True))
    return EngineRequest(prompt=prompt, max_tokens=max_tokens, sampling=GREEDY)


async def test_the_output_is_the_same_with_and_without_speculation(
    speculating: LlamaCppEngine, plain: LlamaCppEngine
) -> None:
    ours, done = await generate(speculating, edit(speculating))
    theirs, their_done = await generate(plain, edit(plain))
    assert ours == theirs
    assert done.completion_tokens == their_done.completion_tokens
    health = await speculating.health()
    assert health.draft_accepted > 0
    assert (await plain.health()).draft_tokens == 0


async def test_the_output_is_the_same_up_to_a_near_tie(
    speculating: LlamaCppEngine, plain: LlamaCppEngine
) -> None:
    """A step that reads several tokens rounds differently from a step of one, and the
    difference carries through the KV: where plain decoding's two best tokens are within
    ``TIE`` the two may part. Up to there the outputs are the same."""
    request = edit(plain, 120, FIM)
    pieces: list[Piece] = []
    async for event in plain.generate(replace(request, logprobs=2)):
        if isinstance(event, Piece):
            pieces.append(event)
    margins = [p.logprobs[0].top[0].logprob - p.logprobs[0].top[1].logprob for p in pieces]
    tie = next((i for i, margin in enumerate(margins) if margin < TIE), len(pieces))
    assert tie > 40  # the comparison covers a real stretch of the answer
    ours, _ = await generate(speculating, edit(speculating, 120, FIM))
    assert ours.startswith("".join(p.text for p in pieces[:tie]))


async def test_a_constrained_output_with_speculation_still_validates(
    speculating: LlamaCppEngine,
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "lines": {"type": "integer"}},
        "required": ["name", "lines"],
        "additionalProperties": False,
    }
    question = (
        "<|im_start|>user\nAnswer in JSON with the function's name and its line count:\n\n"
        f"{CODE}<|im_end|>\n<|im_start|>assistant\n"
    )
    request = EngineRequest(
        prompt=tuple(speculating.tokenize(question, special=True)),
        max_tokens=60,
        sampling=GREEDY,
        constraint=Constraint("json_schema", json.dumps(schema)),
    )
    text, done = await generate(speculating, request)
    assert done.reason == "stop"
    answer = json.loads(text)
    assert set(answer) == {"name", "lines"}


async def test_max_tokens_holds_with_speculation(speculating: LlamaCppEngine) -> None:
    _, done = await generate(speculating, edit(speculating, max_tokens=7))
    assert done.completion_tokens == 7
    assert done.reason == "length"
