"""CompletionService: FIM request policy in ``prepare``, the events of ``run``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from decimal import Decimal

import pytest

from deepwell.chat.fim import FimFormat
from deepwell.core.completion import (
    FIM_MAX_TOKENS,
    CompletionEvent,
    CompletionLogprob,
    CompletionRequest,
    CompletionService,
    CompletionText,
    PreparedCompletion,
)
from deepwell.core.events import Finished, Usage
from deepwell.core.metering import Meter
from deepwell.engine.base import Admitted, Done, EngineEvent, EngineRequest, Piece
from deepwell.engine.fake import FakeEngine
from deepwell.errors import InvalidRequest, ModelNotFound
from deepwell.models.registry import ModelRegistry
from deepwell.settings import LegacyAlias, Prices, PublicModel, Settings
from deepwell.vocabulary import Caller, Sampling, TokenLogprob, TopLogprob

pytestmark = pytest.mark.usefixtures("clean_env")

CALLER = Caller(account_id=7, account="alice", key_id="key_0123456789abcdef")
REPLY = "    return x"
FIM = FimFormat(prefix=1, suffix=2, middle=3)


def build(
    engine: FakeEngine, settings: Settings | None = None, *, fim: bool = True
) -> CompletionService:
    registry = ModelRegistry(settings or Settings())
    engines = {name: engine for name in registry.backing_names()}
    formats = {name: FIM for name in engines} if fim else {}
    return CompletionService(registry, engines, formats)


def request(prompt: str = "ab", suffix: str = "cd", **kwargs: object) -> CompletionRequest:
    kwargs.setdefault("model", "deepseek-v4-flash")
    return CompletionRequest(prompt=prompt, suffix=suffix, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(REPLY, context_length=8192)


@pytest.fixture
def service(engine: FakeEngine) -> CompletionService:
    return build(engine)


async def run_all(
    service: CompletionService, prepared: PreparedCompletion
) -> list[CompletionEvent]:
    return [event async for event in service.run(prepared, Meter(block_tokens=64))]


# -- prepare -------------------------------------------------------------------------


def test_prompt_is_prefix_suffix_middle(service: CompletionService) -> None:
    prepared = service.prepare(request(), CALLER)
    assert prepared.engine_request.prompt == (1, ord("a"), ord("b"), 2, ord("c"), ord("d"), 3)
    assert prepared.model.id == "deepseek-v4-flash"


def test_prompt_and_suffix_cannot_inject_special_tokens(engine: FakeEngine) -> None:
    seen: list[tuple[str, bool]] = []

    class Recording(FakeEngine):
        def tokenize(self, text: str, *, special: bool) -> list[int]:
            seen.append((text, special))
            return super().tokenize(text, special=special)

    build(Recording(REPLY)).prepare(request("<|fim_middle|>", "x"), CALLER)
    assert seen == [("<|fim_middle|>", False), ("x", False)]


def test_empty_prompt_and_suffix_are_fine(service: CompletionService) -> None:
    prepared = service.prepare(request("", ""), CALLER)
    assert prepared.engine_request.prompt == (1, 2, 3)


def test_sampling_stop_logprobs_and_namespace(service: CompletionService) -> None:
    sampling = Sampling(temperature=0.0, top_p=0.5, seed=3)
    prepared = service.prepare(
        request(sampling=sampling, stop=("\n\n",), logprobs=5, max_tokens=9), CALLER
    )
    engine_request = prepared.engine_request
    assert engine_request.sampling == sampling
    assert engine_request.stop == ("\n\n",)
    assert engine_request.logprobs == 5
    assert engine_request.max_tokens == 9
    assert engine_request.namespace == "7/"
    assert engine_request.constraint is None


def test_default_max_tokens_is_the_fim_limit(service: CompletionService) -> None:
    assert service.prepare(request(), CALLER).engine_request.max_tokens == FIM_MAX_TOKENS


def test_default_max_tokens_fits_a_small_context() -> None:
    service = build(FakeEngine(REPLY, context_length=100))
    assert service.prepare(request(), CALLER).engine_request.max_tokens == 100 - 7


@pytest.mark.parametrize("max_tokens", [1, 4096])
def test_max_tokens_bounds_are_valid(service: CompletionService, max_tokens: int) -> None:
    prepared = service.prepare(request(max_tokens=max_tokens), CALLER)
    assert prepared.engine_request.max_tokens == max_tokens


@pytest.mark.parametrize("max_tokens", [0, -3, 4097, 5000])
def test_max_tokens_out_of_range(service: CompletionService, max_tokens: int) -> None:
    with pytest.raises(InvalidRequest) as caught:
        service.prepare(request(max_tokens=max_tokens), CALLER)
    assert caught.value.status == 400
    assert caught.value.param == "max_tokens"
    assert caught.value.message == (
        "Invalid max_tokens value, the valid range of max_tokens is [1, 4096]"
    )


def test_a_model_with_a_smaller_output_limit_keeps_it() -> None:
    prices = Prices(cache_hit_input=Decimal(0), cache_miss_input=Decimal(0), output=Decimal(0))
    settings = Settings(models={"small": PublicModel(max_output=100, prices=prices)}, aliases={})
    service = build(FakeEngine(REPLY, context_length=8192), settings)
    with pytest.raises(InvalidRequest, match=r"\[1, 100\]"):
        service.prepare(request(model="small", max_tokens=101), CALLER)


def test_context_overflow_is_a_400() -> None:
    service = build(FakeEngine(REPLY, context_length=16))
    with pytest.raises(InvalidRequest, match="maximum context length is 16 tokens"):
        service.prepare(request("x" * 20), CALLER)


def test_more_than_sixteen_stops_is_a_400(service: CompletionService) -> None:
    with pytest.raises(InvalidRequest, match="at most 16 stop sequences"):
        service.prepare(request(stop=tuple(str(i) for i in range(17))), CALLER)


def test_unknown_model(service: CompletionService) -> None:
    with pytest.raises(ModelNotFound):
        service.prepare(request(model="gpt-4"), CALLER)


def test_a_model_without_fim_is_a_400(engine: FakeEngine) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build(engine, fim=False).prepare(request(), CALLER)
    assert caught.value.status == 400
    assert caught.value.param == "model"
    assert caught.value.message == "The model `deepseek-v4-flash` does not support FIM completion"


def test_thinking_is_refused(service: CompletionService) -> None:
    with pytest.raises(InvalidRequest, match="only available in non-thinking mode"):
        service.prepare(request(thinking=True), CALLER)
    assert service.prepare(request(thinking=False), CALLER).model.id == "deepseek-v4-flash"


def test_a_thinking_alias_is_refused_and_a_non_thinking_one_served(engine: FakeEngine) -> None:
    future = Settings().aliases["deepseek-chat"].retires_at.replace(year=2999)
    aliases = {
        "deepseek-chat": LegacyAlias(target="deepseek-v4-flash", thinking=False, retires_at=future),
        "deepseek-reasoner": LegacyAlias(
            target="deepseek-v4-flash", thinking=True, retires_at=future
        ),
    }
    service = build(engine, Settings(aliases=aliases))
    with pytest.raises(InvalidRequest, match="non-thinking mode"):
        service.prepare(request(model="deepseek-reasoner"), CALLER)
    assert service.prepare(request(model="deepseek-chat"), CALLER).model.id == "deepseek-v4-flash"


def test_the_default_models_think_by_default_yet_serve_fim(service: CompletionService) -> None:
    for model in ("deepseek-v4-flash", "deepseek-v4-pro"):
        assert service.prepare(request(model=model), CALLER).model.thinking is True


# -- run -----------------------------------------------------------------------------


async def test_events_in_order(service: CompletionService) -> None:
    events = await run_all(service, service.prepare(request(), CALLER))
    *pieces, finished = events
    assert pieces
    assert all(isinstance(p, CompletionText) and p.text and not p.logprobs for p in pieces)
    assert "".join(p.text for p in pieces) == REPLY  # type: ignore[union-attr]
    assert finished == Finished("stop", Usage(7, len(REPLY)))


async def test_echo_comes_first(service: CompletionService) -> None:
    events = await run_all(service, service.prepare(request("def f():", echo=True), CALLER))
    assert events[0] == CompletionText("def f():")
    text = "".join(e.text for e in events if isinstance(e, CompletionText))
    assert text == "def f():" + REPLY


async def test_an_empty_prompt_echoes_nothing(service: CompletionService) -> None:
    events = await run_all(service, service.prepare(request("", echo=True), CALLER))
    assert events[0] == CompletionText(REPLY[0])


async def test_closing_run_aborts_the_generation(
    service: CompletionService, engine: FakeEngine
) -> None:
    prepared = service.prepare(request(), CALLER)
    async with aclosing(service.run(prepared, Meter(block_tokens=64))) as events:
        assert isinstance(await anext(events), CompletionText)
        assert engine.active == 1
    assert engine.active == 0


class ScriptedEngine(FakeEngine):
    """Yields exactly the given events."""

    def __init__(self, script: list[EngineEvent]) -> None:
        super().__init__()
        self.script = script

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        for event in self.script:
            yield event


def logprob(raw: bytes, value: float = -0.5) -> TokenLogprob:
    text = raw.decode("utf-8", errors="replace")
    return TokenLogprob(text, value, tuple(raw), (TopLogprob(text, value, tuple(raw)),))


async def test_logprobs_carry_offsets_in_the_returned_text() -> None:
    euro = "€".encode()
    script: list[EngineEvent] = [
        Admitted(),
        Piece("ab", (logprob(b"a"), logprob(b"b", -1.0)), tokens=2),
        # A character split over two tokens: the text comes with the second.
        Piece("", (), tokens=1),
        Piece("€", (logprob(euro[:1]), logprob(euro[1:])), tokens=1),
        Piece("c", (logprob(b"c"),), tokens=1),
        Done("stop", 8, 5, 0),
    ]
    service = build(ScriptedEngine(script))
    events = await run_all(service, service.prepare(request("xyz", echo=True), CALLER))
    pieces = [e for e in events if isinstance(e, CompletionText)]
    assert [p.text for p in pieces] == ["xyz", "ab", "€", "c"]
    placed = [lp for p in pieces for lp in p.logprobs]
    assert [lp.offset for lp in placed] == [3, 4, 5, 5, 6]
    assert placed[1] == CompletionLogprob("b", -1.0, 4, (("b", -1.0),))
    assert events[-1] == Finished("stop", Usage(8, 5))


async def test_offsets_start_at_zero_without_echo() -> None:
    script: list[EngineEvent] = [Piece("hi", (logprob(b"h"), logprob(b"i"))), Done("stop", 7, 2)]
    service = build(ScriptedEngine(script))
    events = await run_all(service, service.prepare(request(), CALLER))
    assert isinstance(events[0], CompletionText)
    assert [lp.offset for lp in events[0].logprobs] == [0, 1]


async def test_cached_tokens_are_hits_in_whole_blocks() -> None:
    prompt = "x" * 200
    script: list[EngineEvent] = [Admitted(150), Piece("a", tokens=1), Done("length", 205, 1, 150)]
    service = build(ScriptedEngine(script))
    events = await run_all(service, service.prepare(request(prompt), CALLER))
    assert events[-1] == Finished("length", Usage(205, 1, cache_hit_tokens=128))
