"""The legacy completions wire format of DeepSeek's FIM endpoint (``/beta/completions``).

Requests become ``core.completion.CompletionRequest``; completion events become one
``text_completion`` object or one ``text_completion`` chunk dict per piece of text.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from typing import Annotated

from pydantic import Field

from deepwell.core.completion import CompletionEvent, CompletionLogprob, CompletionText
from deepwell.core.completion import CompletionRequest as CoreRequest
from deepwell.core.events import Finished, Started, Usage
from deepwell.dialects.common import GenerationFields, Json, chunk, response
from deepwell.errors import EngineFailure

OBJECT = "text_completion"


class CompletionRequest(GenerationFields):
    """``POST /beta/completions``. Unknown fields are ignored, as DeepSeek does."""

    prompt: str
    suffix: str | None = None
    echo: bool | None = False
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None


def to_request(body: CompletionRequest) -> CoreRequest:
    return CoreRequest(
        model=body.model,
        prompt=body.prompt,
        suffix=body.suffix or "",
        max_tokens=body.max_tokens,
        sampling=body.sampling(),
        stop=body.stops(),
        echo=bool(body.echo),
        logprobs=body.logprobs,
        thinking=body.thinking_enabled(),
    )


# -- core → wire ---------------------------------------------------------------------


def logprobs(placed: Sequence[CompletionLogprob]) -> Json:
    """The legacy shape: parallel lists, each rival set including the chosen token."""
    return {
        "tokens": [p.token for p in placed],
        "token_logprobs": [p.logprob for p in placed],
        "top_logprobs": [{**dict(p.top), p.token: p.logprob} for p in placed],
        "text_offset": [p.offset for p in placed],
    }


async def collect(events: AsyncIterable[CompletionEvent], *, with_logprobs: bool) -> Json:
    """Fold a whole completion into one ``text_completion`` object."""
    started: Started | None = None
    text: list[str] = []
    placed: list[CompletionLogprob] = []
    async for event in events:
        match event:
            case Started():
                started = event
            case CompletionText(piece, tokens):
                text.append(piece)
                placed.extend(tokens)
            case Finished(reason, used) if started is not None:
                choice = _choice("".join(text), placed if with_logprobs else None, reason)
                return response(started, OBJECT, choice, used)
    raise EngineFailure("the generation ended without a result")


class ChunkEncoder:
    """Turns completion events into ``text_completion`` chunks; ``Started`` sends none.

    Usage rides on the chunk that carries ``finish_reason``; with
    ``stream_options.include_usage`` every other chunk has ``"usage": null``.
    """

    def __init__(self, *, include_usage: bool, with_logprobs: bool) -> None:
        self._include_usage = include_usage
        self._with_logprobs = with_logprobs
        self._started: Started | None = None

    def encode(self, event: CompletionEvent) -> Json | None:
        match event:
            case Started():
                self._started = event
                return None
            case CompletionText(piece, tokens):
                return self._chunk(_choice(piece, tokens if self._with_logprobs else None, None))
            case Finished(reason, used):
                empty = () if self._with_logprobs else None
                return self._chunk(_choice("", empty, reason), used=used)

    def _chunk(self, choice: Json, *, used: Usage | None = None) -> Json:
        assert self._started is not None, "the first event of a generation is Started"
        return chunk(self._started, OBJECT, choice, used=used, include_usage=self._include_usage)


def _choice(
    text: str, placed: Sequence[CompletionLogprob] | None, finish_reason: str | None
) -> Json:
    return {
        "index": 0,
        "text": text,
        "logprobs": None if placed is None else logprobs(placed),
        "finish_reason": finish_reason,
    }
