"""The OpenAI wire format of DeepSeek's chat API: request schema, conversion, encoding.

Nothing here knows HTTP or the engine: requests become ``core.GenerationRequest``;
core events become ``chat.completion`` objects or ``chat.completion.chunk`` dicts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deepwell.core.events import (
    Event,
    Finished,
    ReasoningDelta,
    Started,
    TextDelta,
    Usage,
)
from deepwell.core.types import GenerationRequest, Message, Sampling, ToolCall
from deepwell.errors import EngineFailure, InvalidRequest

Json = dict[str, Any]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class FunctionCall(_Wire):
    name: str
    arguments: str = ""


class ToolCallIn(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Wire):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    prefix: bool = False


class Thinking(_Wire):
    type: Literal["enabled", "disabled"]


class StreamOptions(_Wire):
    include_usage: bool = False


class ResponseFormat(_Wire):
    type: Literal["text", "json_object"] = "text"


class ChatCompletionRequest(_Wire):
    """``POST /chat/completions``. Unknown fields are ignored, as DeepSeek does."""

    model: str
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    thinking: Thinking | None = None
    reasoning_effort: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    response_format: ResponseFormat | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    user_id: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]+$", max_length=512)] | None = None


# -- wire → core ---------------------------------------------------------------------


def to_request(body: ChatCompletionRequest, *, beta: bool = False) -> GenerationRequest:
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    thinking = None if body.thinking is None else body.thinking.type == "enabled"
    return GenerationRequest(
        model=body.model,
        messages=tuple(_message(i, m) for i, m in enumerate(body.messages)),
        max_tokens=body.max_tokens if body.max_tokens is not None else body.max_completion_tokens,
        sampling=Sampling(
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            seed=body.seed,
        ),
        stop=stop,
        thinking=thinking,
        user_id=body.user_id,
        beta=beta,
    )


def _message(index: int, m: ChatMessage) -> Message:
    content = m.content if not isinstance(m.content, list) else "".join(p.text for p in m.content)
    if content is None and m.role != "assistant":
        raise InvalidRequest(
            f"messages[{index}]: a {m.role} message needs `content`", param=f"messages[{index}]"
        )
    if m.role == "tool" and not m.tool_call_id:
        raise InvalidRequest(
            f"messages[{index}]: a tool message needs `tool_call_id`", param=f"messages[{index}]"
        )
    return Message(
        role=m.role,
        content=content,
        reasoning_content=m.reasoning_content,
        tool_calls=tuple(
            ToolCall(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or ()
        ),
        tool_call_id=m.tool_call_id,
        name=m.name,
        prefix=m.prefix,
    )


# -- core → wire ---------------------------------------------------------------------


def usage(u: Usage) -> Json:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_hit_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "prompt_cache_hit_tokens": u.cache_hit_tokens,
        "prompt_cache_miss_tokens": u.cache_miss_tokens,
    }


async def collect(events: AsyncIterator[Event]) -> Json:
    """Fold a whole generation into one ``chat.completion`` object."""
    started: Started | None = None
    text: list[str] = []
    reasoning: list[str] = []
    async for event in events:
        match event:
            case Started():
                started = event
            case TextDelta(piece):
                text.append(piece)
            case ReasoningDelta(piece):
                reasoning.append(piece)
            case Finished(reason, used) if started is not None:
                message: Json = {"role": "assistant", "content": "".join(text)}
                if started.thinking:
                    message["reasoning_content"] = "".join(reasoning)
                return {
                    **_envelope(started, "chat.completion"),
                    "choices": [
                        {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
                    ],
                    "usage": usage(used),
                }
    raise EngineFailure("the generation ended without a result")


class ChunkEncoder:
    """Turns events into ``chat.completion.chunk`` dicts, one per event, in order.

    Usage rides on the chunk that carries ``finish_reason``. With
    ``stream_options.include_usage`` every other chunk has ``"usage": null``; without
    it the key is absent there, as the hosted API does.
    """

    def __init__(self, *, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._started: Started | None = None

    def encode(self, event: Event) -> Json:
        match event:
            case Started():
                self._started = event
                if event.thinking:
                    return self._chunk(
                        {"role": "assistant", "content": None, "reasoning_content": ""}
                    )
                return self._chunk({"role": "assistant", "content": ""})
            case TextDelta(piece):
                return self._chunk(self._delta(content=piece))
            case ReasoningDelta(piece):
                return self._chunk({"content": None, "reasoning_content": piece})
            case Finished(reason, used):
                return self._chunk(self._delta(content=""), finish_reason=reason, used=used)

    def _delta(self, *, content: str) -> Json:
        assert self._started is not None
        if self._started.thinking:
            return {"content": content, "reasoning_content": None}
        return {"content": content}

    def _chunk(
        self, delta: Json, *, finish_reason: str | None = None, used: Usage | None = None
    ) -> Json:
        assert self._started is not None, "the first event of a generation is Started"
        chunk: Json = {
            **_envelope(self._started, "chat.completion.chunk"),
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if used is not None:
            chunk["usage"] = usage(used)
        elif self._include_usage:
            chunk["usage"] = None
        return chunk


def _envelope(started: Started, kind: str) -> Json:
    return {
        "id": started.id,
        "object": kind,
        "created": started.created,
        "model": started.model,
        "system_fingerprint": started.fingerprint,
    }
