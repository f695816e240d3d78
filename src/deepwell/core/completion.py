"""FIM completion: the text between a prompt and a suffix, in non-thinking mode.

``CompletionService.prepare`` resolves and validates a request and renders its prompt
with the model's FIM tokens; every error a client can cause is raised there. ``run``
then yields ``CompletionText`` pieces (the echoed prompt first, when asked) and one
``Finished``; the gateway puts ``Started`` before them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from deepwell.cache.blocks import cache_namespace
from deepwell.chat.fim import FimFormat
from deepwell.core.checks import check_max_tokens, check_stop, fit_context
from deepwell.core.events import Finished, Started
from deepwell.core.metering import Meter
from deepwell.engine.base import Done, Engine, EngineRequest, Piece
from deepwell.engine.text import Utf8Stream
from deepwell.errors import InvalidRequest
from deepwell.models.registry import ModelRegistry, ResolvedModel
from deepwell.vocabulary import Caller, Sampling, TokenLogprob

FIM_MAX_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """Fill the gap between ``prompt`` and ``suffix``.

    ``logprobs`` is the number of most likely alternatives to report per token, or None
    for no logprobs at all. ``thinking`` is what the client asked for, if anything.
    """

    model: str
    prompt: str
    suffix: str = ""
    max_tokens: int | None = None
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    echo: bool = False
    logprobs: int | None = None
    thinking: bool | None = None


@dataclass(frozen=True, slots=True)
class CompletionLogprob:
    """A generated token, where it starts in the returned text, and its likeliest rivals."""

    token: str
    logprob: float
    offset: int
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class CompletionText:
    """Text of the completion, with the logprobs of the tokens it came from when asked."""

    text: str
    logprobs: tuple[CompletionLogprob, ...] = ()


CompletionEvent = Started | CompletionText | Finished


@dataclass(frozen=True, slots=True)
class PreparedCompletion:
    model: ResolvedModel
    engine_request: EngineRequest
    echo: str


class CompletionService:
    def __init__(
        self,
        registry: ModelRegistry,
        engines: Mapping[str, Engine],
        formats: Mapping[str, FimFormat],
    ) -> None:
        self._registry = registry
        self._engines = engines
        self._formats = formats

    def resolve(self, name: str) -> ResolvedModel:
        """The public model a request names (a 400 for an unknown name)."""
        return self._registry.resolve(name)

    def prepare(self, request: CompletionRequest, caller: Caller) -> PreparedCompletion:
        model = self._registry.resolve(request.model)
        fim = self._formats.get(model.backing)
        if fim is None:
            raise InvalidRequest(
                f"The model `{model.id}` does not support FIM completion", param="model"
            )
        if request.thinking or (model.thinking_fixed and model.thinking):
            raise InvalidRequest("FIM completion is only available in non-thinking mode")
        limit = min(FIM_MAX_TOKENS, model.spec.max_output)
        check_max_tokens(request.max_tokens, limit)
        check_stop(request.stop)
        engine = self._engines[model.backing]
        prompt = fim.render(
            engine.tokenize(request.prompt, special=False),
            engine.tokenize(request.suffix, special=False),
        )
        max_tokens = fit_context(len(prompt), request.max_tokens, limit, engine.info.context_length)
        return PreparedCompletion(
            model=model,
            engine_request=EngineRequest(
                prompt=prompt,
                max_tokens=max_tokens,
                sampling=request.sampling,
                stop=request.stop,
                namespace=cache_namespace(caller.account_id),
                logprobs=request.logprobs,
            ),
            echo=request.prompt if request.echo else "",
        )

    async def run(
        self, prepared: PreparedCompletion, meter: Meter
    ) -> AsyncGenerator[CompletionText | Finished, None]:
        """The text (the echoed prompt first), then Finished; ``meter`` counts the tokens
        as they come. Closing the iterator aborts the generation."""
        engine = self._engines[prepared.model.backing]
        request = prepared.engine_request
        if prepared.echo:
            yield CompletionText(prepared.echo)
        offsets = _Offsets(start=len(prepared.echo))
        async with aclosing(engine.generate(request)) as events:
            async for event in events:
                meter.count(event, len(request.prompt))
                if isinstance(event, Done):
                    yield Finished(event.reason, meter.usage())
                elif isinstance(event, Piece) and (event.text or event.logprobs):
                    yield CompletionText(event.text, offsets.place(event.logprobs))


class _Offsets:
    """Where each generated token starts in the returned text, counted in characters."""

    def __init__(self, *, start: int) -> None:
        self._chars = start
        self._utf8 = Utf8Stream()

    def place(self, tokens: Sequence[TokenLogprob]) -> tuple[CompletionLogprob, ...]:
        placed: list[CompletionLogprob] = []
        for token in tokens:
            top = tuple((alt.token, alt.logprob) for alt in token.top)
            placed.append(CompletionLogprob(token.token, token.logprob, self._chars, top))
            self._chars += len(self._utf8.feed(bytes(token.bytes)))
        return tuple(placed)
