"""GenerationService: request policy in ``prepare`` and the events of ``run``."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from decimal import Decimal

import pytest

from deepwell.chat.template import ChatTemplate
from deepwell.core.checks import MAX_STOP_SEQUENCES
from deepwell.core.events import Event, Finished, TextDelta, Usage
from deepwell.core.metering import Meter
from deepwell.core.service import GenerationService, Prepared
from deepwell.core.types import GenerationRequest
from deepwell.engine.base import Admitted, Done, EngineEvent, EngineRequest, Piece
from deepwell.engine.fake import FakeEngine
from deepwell.errors import InvalidRequest, ModelNotFound
from deepwell.models.registry import ModelRegistry
from deepwell.settings import DEFAULT_MODEL, Prices, PublicModel, Settings
from deepwell.vocabulary import Caller, Message, Sampling

pytestmark = pytest.mark.usefixtures("clean_env")

CALLER = Caller(account_id=7, account="alice", key_id="key_0123456789abcdef")
REPLY = "Hello from the fake engine."
# FakeEngine's template around one user message "hi": one token per character.
PROMPT_HI = "<|user|>hi\n<|assistant|>"


def build(engine: FakeEngine, settings: Settings | None = None) -> GenerationService:
    settings = settings or Settings()
    registry = ModelRegistry(settings)
    engines = {name: engine for name in registry.backing_names()}
    templates = {name: ChatTemplate(engine.info.chat_template) for name in engines}
    return GenerationService(registry, engines, templates)


def request(content: str = "hi", **kwargs: object) -> GenerationRequest:
    kwargs.setdefault("model", "deepseek-v4-flash")
    kwargs.setdefault("thinking", False)
    return GenerationRequest(messages=(Message("user", content),), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(REPLY, context_length=512)


@pytest.fixture
def service(engine: FakeEngine) -> GenerationService:
    return build(engine)


async def run_all(service: GenerationService, prepared: Prepared) -> list[Event]:
    return [event async for event in service.run(prepared, Meter(block_tokens=8))]


# -- prepare -------------------------------------------------------------------------


def test_default_models_share_one_backing_model() -> None:
    registry = ModelRegistry(Settings())
    assert registry.backing_names() == {DEFAULT_MODEL}


def test_prepare_renders_and_tokenizes(service: GenerationService) -> None:
    prepared = service.prepare(request(), CALLER)
    assert prepared.model.id == "deepseek-v4-flash"
    assert prepared.plan.request.prompt == tuple(ord(c) for c in PROMPT_HI)


def test_default_max_tokens_fills_the_context(service: GenerationService) -> None:
    prepared = service.prepare(request(), CALLER)
    assert prepared.plan.request.max_tokens == 512 - len(PROMPT_HI)


def test_default_max_tokens_is_capped_by_max_output() -> None:
    engine = FakeEngine(REPLY, context_length=100_000)
    prepared = build(engine).prepare(request(), CALLER)
    assert prepared.plan.request.max_tokens == 8192


def test_explicit_max_tokens_is_kept(service: GenerationService) -> None:
    assert service.prepare(request(max_tokens=5), CALLER).plan.request.max_tokens == 5


@pytest.mark.parametrize("max_tokens", [0, -1, 8193, 1_000_000])
def test_max_tokens_out_of_range(service: GenerationService, max_tokens: int) -> None:
    with pytest.raises(InvalidRequest) as caught:
        service.prepare(request(max_tokens=max_tokens), CALLER)
    assert caught.value.message == (
        "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]"
    )
    assert caught.value.param == "max_tokens"
    assert caught.value.status == 400


def test_max_tokens_range_follows_the_model() -> None:
    prices = Prices(cache_hit_input=Decimal(0), cache_miss_input=Decimal(0), output=Decimal(0))
    settings = Settings(models={"small": PublicModel(max_output=100, prices=prices)}, aliases={})
    service = build(FakeEngine(REPLY, context_length=512), settings)
    with pytest.raises(
        InvalidRequest,
        match=re.escape("Invalid max_tokens value, the valid range of max_tokens is [1, 100]"),
    ):
        service.prepare(request(model="small", max_tokens=101), CALLER)
    prepared = service.prepare(request(model="small", max_tokens=100), CALLER)
    assert prepared.plan.request.max_tokens == 100
    assert service.prepare(request(model="small"), CALLER).plan.request.max_tokens == 100


@pytest.mark.parametrize("max_tokens", [1, 8192])
def test_max_tokens_bounds_are_valid(max_tokens: int) -> None:
    service = build(FakeEngine(REPLY, context_length=100_000))
    prepared = service.prepare(request(max_tokens=max_tokens), CALLER)
    assert prepared.plan.request.max_tokens == max_tokens


def test_context_length_error_with_max_tokens() -> None:
    service = build(FakeEngine(REPLY, context_length=32))
    with pytest.raises(InvalidRequest) as caught:
        service.prepare(request(max_tokens=10), CALLER)
    assert caught.value.message == (
        "This model's maximum context length is 32 tokens. However, you requested 34 tokens "
        "(24 in the messages, 10 in the completion). Please reduce the length of the messages "
        "or completion."
    )
    assert caught.value.status == 400


def test_context_length_error_when_the_prompt_alone_is_too_long() -> None:
    service = build(FakeEngine(REPLY, context_length=32))
    with pytest.raises(InvalidRequest) as caught:
        service.prepare(request("x" * 30), CALLER)
    prompt = len(PROMPT_HI) - 2 + 30
    assert caught.value.message == (
        f"This model's maximum context length is 32 tokens. However, you requested {prompt + 1} "
        f"tokens ({prompt} in the messages, 1 in the completion). Please reduce the length of "
        "the messages or completion."
    )


def test_prompt_that_fills_the_context_exactly_is_too_long() -> None:
    service = build(FakeEngine(REPLY, context_length=len(PROMPT_HI)))
    with pytest.raises(InvalidRequest, match="maximum context length"):
        service.prepare(request(), CALLER)


def test_prompt_one_short_of_the_context_leaves_one_token() -> None:
    service = build(FakeEngine(REPLY, context_length=len(PROMPT_HI) + 1))
    assert service.prepare(request(), CALLER).plan.request.max_tokens == 1
    with pytest.raises(InvalidRequest, match="maximum context length"):
        service.prepare(request(max_tokens=2), CALLER)


def test_sixteen_stops_are_allowed(service: GenerationService) -> None:
    stops = tuple(f"s{i}" for i in range(MAX_STOP_SEQUENCES))
    assert MAX_STOP_SEQUENCES == 16
    assert service.prepare(request(stop=stops), CALLER).plan.request.stop == stops


def test_more_than_sixteen_stops_is_a_400(service: GenerationService) -> None:
    stops = tuple(f"s{i}" for i in range(17))
    with pytest.raises(InvalidRequest) as caught:
        service.prepare(request(stop=stops), CALLER)
    assert caught.value.status == 400
    assert caught.value.param == "stop"
    assert caught.value.message == ("Invalid stop value, at most 16 stop sequences are allowed")


def test_unknown_model(service: GenerationService) -> None:
    with pytest.raises(ModelNotFound, match="Model Not Exist"):
        service.prepare(request(model="gpt-4"), CALLER)


def test_sampling_and_namespace(service: GenerationService) -> None:
    sampling = Sampling(temperature=0.2, top_p=0.5, seed=42)
    prepared = service.prepare(request(sampling=sampling, user_id="bob"), CALLER)
    assert prepared.plan.request.sampling == sampling
    assert prepared.plan.request.namespace == "7/bob"
    assert service.prepare(request(), CALLER).plan.request.namespace == "7/"


def test_namespace_separates_accounts(service: GenerationService) -> None:
    other = Caller(account_id=8, account="bob", key_id="key_x")
    assert (
        service.prepare(request(), CALLER).plan.request.namespace
        != service.prepare(request(), other).plan.request.namespace
    )


def test_template_objection_is_a_400(engine: FakeEngine) -> None:
    registry = ModelRegistry(Settings())
    template = ChatTemplate("{{ raise_exception('no system messages') }}")
    service = GenerationService(registry, {DEFAULT_MODEL: engine}, {DEFAULT_MODEL: template})
    with pytest.raises(InvalidRequest, match="no system messages"):
        service.prepare(request(), CALLER)


# -- run -----------------------------------------------------------------------------


async def test_events_in_order(service: GenerationService) -> None:
    *deltas, finished = await run_all(service, service.prepare(request(), CALLER))
    assert deltas
    assert all(isinstance(d, TextDelta) and d.text for d in deltas)
    assert "".join(d.text for d in deltas) == REPLY  # type: ignore[union-attr]
    assert finished == Finished("stop", Usage(len(PROMPT_HI), len(REPLY)))


async def test_length_finish(service: GenerationService) -> None:
    events = await run_all(service, service.prepare(request(max_tokens=5), CALLER))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY[:5]
    assert events[-1] == Finished("length", Usage(len(PROMPT_HI), 5))


async def test_stop_finish(service: GenerationService) -> None:
    events = await run_all(service, service.prepare(request(stop=("fake",)), CALLER))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello from the "
    assert isinstance(events[-1], Finished)
    assert events[-1].reason == "stop"


async def test_closing_run_aborts_the_generation(
    service: GenerationService, engine: FakeEngine
) -> None:
    prepared = service.prepare(request(), CALLER)
    async with aclosing(service.run(prepared, Meter(block_tokens=8))) as events:
        assert isinstance(await anext(events), TextDelta)
        assert engine.active == 1
    assert engine.active == 0


class ScriptedEngine(FakeEngine):
    """Yields exactly the given events."""

    def __init__(self, script: list[EngineEvent]) -> None:
        super().__init__()
        self.script = script
        self.requests: list[EngineRequest] = []

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        self.requests.append(request)
        for event in self.script:
            yield event


async def test_empty_pieces_are_not_deltas_and_hits_count_in_whole_blocks() -> None:
    script: list[EngineEvent] = [
        Admitted(20),
        Piece("", tokens=1),
        Piece("a", tokens=1),
        Piece("", tokens=1),
        Piece("b", tokens=1),
        Done("stop", len(PROMPT_HI), 4, 20),
    ]
    engine = ScriptedEngine(script)
    service = build(engine)
    events = await run_all(service, service.prepare(request(), CALLER))
    assert events == [
        TextDelta("a"),
        TextDelta("b"),
        Finished("stop", Usage(len(PROMPT_HI), completion_tokens=4, cache_hit_tokens=16)),
    ]
    assert engine.requests[0].namespace == "7/"
