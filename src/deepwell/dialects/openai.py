"""The OpenAI wire format of DeepSeek's chat API: request schema, conversion, encoding.

Nothing here knows HTTP or the engine: requests become ``core.GenerationRequest``;
core events become ``chat.completion`` objects or ``chat.completion.chunk`` dicts.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from deepwell.core.events import (
    Event,
    Finished,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from deepwell.core.types import GenerationRequest
from deepwell.dialects.common import GenerationFields, Json, Wire, chunk, response
from deepwell.errors import EngineFailure, InvalidRequest
from deepwell.vocabulary import Message, TokenLogprob, Tool, ToolCall, ToolChoice


class TextPart(Wire):
    type: Literal["text"]
    text: str


class FunctionCall(Wire):
    name: str
    arguments: str = ""


class ToolCallIn(Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(Wire):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    prefix: bool = False


class FunctionDef(Wire):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool = False


class ToolIn(Wire):
    type: Literal["function"]
    function: FunctionDef


class FunctionName(Wire):
    name: str


class NamedToolChoice(Wire):
    type: Literal["function"]
    function: FunctionName


class JsonSchemaFormat(Wire):
    """OpenAI's structured outputs: ``schema`` is what the reply must be valid against."""

    name: Annotated[str, Field(max_length=64)] = "response"
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(Wire):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None


class ChatCompletionRequest(GenerationFields):
    """``POST /chat/completions``. Unknown fields are ignored, as DeepSeek does."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    reasoning_effort: str | None = None
    max_completion_tokens: int | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    user_id: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]+$", max_length=512)] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None


# -- wire → core ---------------------------------------------------------------------


def to_request(body: ChatCompletionRequest, *, beta: bool = False) -> GenerationRequest:
    return GenerationRequest(
        model=body.model,
        messages=tuple(_message(i, m) for i, m in enumerate(body.messages)),
        max_tokens=body.max_tokens if body.max_tokens is not None else body.max_completion_tokens,
        sampling=body.sampling(),
        stop=body.stops(),
        thinking=body.thinking_enabled(),
        user_id=body.user_id,
        beta=beta,
        tools=tuple(_tool(t) for t in body.tools or ()),
        tool_choice=_tool_choice(body.tool_choice),
        json_output=_format(body) == "json_object",
        response_schema=_response_schema(body),
        parallel_tool_calls=body.parallel_tool_calls is not False,
        reasoning_effort=body.reasoning_effort,
        thinking_budget=body.thinking.budget_tokens if body.thinking is not None else None,
        logprobs=_logprobs(body),
    )


def _format(body: ChatCompletionRequest) -> str:
    return body.response_format.type if body.response_format is not None else "text"


def _response_schema(body: ChatCompletionRequest) -> dict[str, Any] | None:
    if _format(body) != "json_schema":
        return None
    spec = body.response_format.json_schema if body.response_format is not None else None
    if spec is None:
        raise InvalidRequest(
            "response_format.json_schema is required when the type is json_schema",
            param="response_format",
        )
    return spec.schema_


def _tool(tool: ToolIn) -> Tool:
    f = tool.function
    return Tool(f.name, f.description, f.parameters, f.strict)


def _tool_choice(
    choice: Literal["none", "auto", "required"] | NamedToolChoice | None,
) -> ToolChoice | None:
    if isinstance(choice, NamedToolChoice):
        return ToolChoice("function", choice.function.name)
    return None if choice is None else ToolChoice(choice)


def _logprobs(body: ChatCompletionRequest) -> int | None:
    """How many alternatives come with each token's logprob; None when not asked for."""
    if not body.logprobs:
        if body.top_logprobs:
            raise InvalidRequest("top_logprobs requires logprobs to be true", param="top_logprobs")
        return None
    return body.top_logprobs or 0


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


@dataclass(slots=True)
class _Reply:
    """What ``collect`` gathers of one reply."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[Json] = field(default_factory=list)
    text_logprobs: list[Json] = field(default_factory=list)
    reasoning_logprobs: list[Json] = field(default_factory=list)

    def message(self, started: Started) -> Json:
        message: Json = {"role": "assistant", "content": "".join(self.text)}
        if started.thinking:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = self.calls
        return message

    def logprobs(self, started: Started) -> Json | None:
        if not started.logprobs:
            return None
        out: Json = {"content": self.text_logprobs}
        if started.thinking:
            out["reasoning_content"] = self.reasoning_logprobs
        return out


async def collect(events: AsyncIterable[Event]) -> Json:
    """Fold a whole generation into one ``chat.completion`` object."""
    started: Started | None = None
    reply = _Reply()
    async for event in events:
        match event:
            case Started():
                started = event
            case TextDelta(piece, logprobs):
                reply.text.append(piece)
                reply.text_logprobs.extend(logprob_items(logprobs))
            case ReasoningDelta(piece, logprobs):
                reply.reasoning.append(piece)
                reply.reasoning_logprobs.extend(logprob_items(logprobs))
            case ToolCallDelta(index=index, id=None, arguments=more):
                reply.calls[index]["function"]["arguments"] += more
            case ToolCallDelta():
                reply.calls.append(tool_call(event))
            case Finished(reason, used) if started is not None:
                choice = {
                    "index": 0,
                    "message": reply.message(started),
                    "logprobs": reply.logprobs(started),
                    "finish_reason": reason,
                }
                return response(started, "chat.completion", choice, used)
    raise EngineFailure("the generation ended without a result")


def tool_call(call: ToolCallDelta) -> Json:
    """A call's first piece in full; the pieces after it are only more arguments."""
    if call.id is None:
        return {"index": call.index, "function": {"arguments": call.arguments}}
    return {
        "index": call.index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def logprob_items(logprobs: Iterable[TokenLogprob]) -> list[Json]:
    """DeepSeek's per-token shape: token, logprob, bytes and the top alternatives."""
    return [
        {
            "token": lp.token,
            "logprob": lp.logprob,
            "bytes": list(lp.bytes),
            "top_logprobs": [
                {"token": top.token, "logprob": top.logprob, "bytes": list(top.bytes)}
                for top in lp.top
            ],
        }
        for lp in logprobs
    ]


class ChunkEncoder:
    """Turns events into ``chat.completion.chunk`` dicts, one per event, in order.

    Usage rides on the chunk that carries ``finish_reason``. With
    ``stream_options.include_usage`` every other chunk has ``"usage": null``; without
    it the key is absent there, as the hosted API does. With logprobs, a content chunk
    carries ``{"content": [...]}`` and a reasoning chunk ``{"reasoning_content": [...]}``.
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
            case TextDelta(piece, logprobs):
                return self._chunk(
                    self._delta(content=piece), logprobs=self._logprobs("content", logprobs)
                )
            case ReasoningDelta(piece, logprobs):
                return self._chunk(
                    {"content": None, "reasoning_content": piece},
                    logprobs=self._logprobs("reasoning_content", logprobs),
                )
            case ToolCallDelta():
                delta = {**self._delta(content=None), "tool_calls": [tool_call(event)]}
                return self._chunk(delta)
            case Finished(reason, used):
                return self._chunk(self._delta(content=""), finish_reason=reason, used=used)

    def _delta(self, *, content: str | None) -> Json:
        assert self._started is not None
        if self._started.thinking:
            return {"content": content, "reasoning_content": None}
        return {"content": content}

    def _logprobs(self, key: str, logprobs: tuple[TokenLogprob, ...]) -> Json | None:
        assert self._started is not None
        return {key: logprob_items(logprobs)} if self._started.logprobs else None

    def _chunk(
        self,
        delta: Json,
        *,
        finish_reason: str | None = None,
        used: Usage | None = None,
        logprobs: Json | None = None,
    ) -> Json:
        assert self._started is not None, "the first event of a generation is Started"
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return chunk(
            self._started,
            "chat.completion.chunk",
            choice,
            used=used,
            include_usage=self._include_usage,
        )
