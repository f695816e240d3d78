"""Pass-through mode: an upstream that only speaks OpenAI chat (``/v1/chat/completions``).

This is the less exact mode (docs/scale-out.md). The core still renders a prompt, but with
a wire template of this engine's own: one JSON record per message and one for the tools,
which ``generate`` reads back and sends as a chat request. The upstream applies its own
chat template and decoding; its ``reasoning_content`` (or ``reasoning``) comes back as the
reasoning phase, its tool calls as Qwen-style ``<tool_call>`` blocks the core parses (so
such a backing model has ``tool_format = "hermes"``), its ``usage`` as the completion and
cache counts. Prompt tokens are deepwell's estimate (three UTF-8 bytes a token) of the
records, not the upstream's count. JSON Schemas are sent as ``response_format``; Lark
grammars (forced and strict tool calls) are refused.

Thinking runs as on any engine, in two generations; here both read one upstream stream.
The first stops where the upstream's reasoning ends and leaves the stream parked; the
second, whose prompt begins with the first's, takes it up and reads the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from deepwell.chat.template import CLIENT_CLOSE, CLIENT_OPEN
from deepwell.engine.base import (
    Admitted,
    Constraint,
    ConstraintError,
    Done,
    EngineEvent,
    EngineHealth,
    EngineRequest,
    ModelInfo,
    Piece,
)
from deepwell.engine.constraints import Constraints, byte_tokenizer
from deepwell.engine.remote import sse
from deepwell.engine.remote.engine import UpstreamHttp, Upstreams
from deepwell.engine.text import PieceAssembler
from deepwell.errors import EngineFailure
from deepwell.settings import Reasoning
from deepwell.settings import RemoteEngine as RemoteSettings

RECORD = "\x1d"
TEMPLATE = (
    "{%- if tools %}\x1dT{{ tools | tojson }}{% endif -%}"
    "{%- for m in messages %}\x1dM{{ m | tojson }}{% endfor -%}"
    "{%- if add_generation_prompt %}\x1dG{{ 1 if enable_thinking else 0 }}\x1d{% endif -%}"
)
# How long the answer phase of a thinking reply may take to claim its parked stream.
PARK_S = 60.0
_MARKS = re.compile(f"[{CLIENT_OPEN}{CLIENT_CLOSE}]")
_WIDTH = 3


def encode(text: str) -> list[int]:
    """Text as tokens of up to three UTF-8 bytes (the length in bits 24 and up)."""
    data = text.encode("utf-8")
    return [
        (len(part) << 24) | int.from_bytes(part, "big")
        for part in (data[i : i + _WIDTH] for i in range(0, len(data), _WIDTH))
    ]


def decode(tokens: tuple[int, ...] | list[int]) -> str:
    data = b"".join((t & 0xFFFFFF).to_bytes(t >> 24, "big") for t in tokens)
    return data.decode("utf-8", errors="replace")


def _plain(value: Any) -> Any:
    """``value`` without the client-text marks the core's renderer adds."""
    if isinstance(value, str):
        return _MARKS.sub("", value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Conversation:
    """What a pass-through prompt holds: the messages and tools, whether thinking is on,
    and the text after the generation prompt (the opened think block, the reasoning)."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    thinking: bool
    tail: str


def read_prompt(tokens: tuple[int, ...]) -> Conversation:
    text = decode(tokens)
    messages: list[dict[str, Any]] = []
    tools = None
    thinking, tail = False, ""
    for record in text.split(RECORD)[1:]:
        kind, body = record[:1], record[1:]
        if kind == "T":
            tools = _plain(json.loads(body))
        elif kind == "M":
            messages.append(_message(_plain(json.loads(body))))
        elif kind == "G":
            thinking = body.strip() == "1"
        else:
            tail = _plain(record)
    return Conversation(messages, tools, thinking, tail)


def _message(message: dict[str, Any]) -> dict[str, Any]:
    for call in message.get("tool_calls") or ():
        arguments = call["function"].get("arguments")
        if not isinstance(arguments, str):
            call["function"]["arguments"] = json.dumps(arguments, ensure_ascii=False)
    return message


@dataclass(slots=True)
class _Parked:
    """A thinking reply's upstream stream, between its reasoning and its answer."""

    namespace: str
    prompt: tuple[int, ...]
    stream: AbstractAsyncContextManager[Any]
    deltas: _Pushback
    reasoning_tokens: int
    until: float = field(default_factory=lambda: time.monotonic() + PARK_S)


class ChatEngine:
    """An ``Engine`` over upstreams that speak OpenAI chat; see the module's docstring."""

    def __init__(
        self,
        name: str,
        settings: RemoteSettings,
        *,
        context_length: int,
        reasoning: Reasoning | None = None,
        block_tokens: int = 64,
    ) -> None:
        self._settings = settings
        self._reasoning = reasoning or Reasoning(style="native")
        self._upstreams = Upstreams(settings, UpstreamHttp(settings), block_tokens=block_tokens)
        self._constraints = Constraints(byte_tokenizer())
        self._parked: list[_Parked] = []
        self._info = ModelInfo(name, TEMPLATE, "", "", context_length)

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def upstreams(self) -> Upstreams:
        return self._upstreams

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return encode(text)

    def special_token(self, text: str) -> bool:
        return False

    def check_constraint(self, constraint: Constraint) -> None:
        if constraint.kind == "lark":
            raise ConstraintError(
                "this model is served in pass-through mode, which cannot force or hold tool "
                "calls to their schemas"
            )
        self._constraints.check(constraint)

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        conversation = read_prompt(request.prompt)
        end = self._reasoning.end.strip()
        opened = self._reasoning.open.strip()
        answering = conversation.thinking and conversation.tail.strip() != opened
        parked = self._claim(request) if answering else None
        if parked is not None:
            try:
                async for event in self._answer(request, parked.deltas, parked.reasoning_tokens):
                    yield event
            finally:
                await parked.stream.__aexit__(None, None, None)
            return
        body = self._body(request, conversation)
        stream = self._upstreams.stream(
            request.namespace, request.prompt, "/v1/chat/completions", body
        )
        replica, response = await stream.__aenter__()
        deltas = _Pushback(sse.events(response))
        keep = False  # parked for the answer phase, which closes it
        try:
            if conversation.thinking and not answering:
                async for event in self._reasoning_phase(request, deltas, end):
                    yield event
                    if isinstance(event, Done):
                        self._park(request, stream, deltas, event.completion_tokens)
                        keep = True
                        return
            else:
                async for event in self._answer(request, deltas, 0):
                    yield event
        except aiohttp.ClientError as exc:
            self._upstreams.router.failed(replica)
            raise EngineFailure("The model server failed during the reply.") from exc
        finally:
            if not keep:
                await stream.__aexit__(None, None, None)

    def _body(self, request: EngineRequest, conversation: Conversation) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "messages": conversation.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if self._settings.model is not None:
            body["model"] = self._settings.model
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if conversation.tools:
            body["tools"] = conversation.tools
        if not conversation.thinking:
            body["chat_template_kwargs"] = {self._reasoning.switch: False}
        if request.constraint is not None:
            schema = json.loads(request.constraint.source)
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": schema},
            }
        return body

    async def _reasoning_phase(
        self, request: EngineRequest, deltas: _Pushback, end: str
    ) -> AsyncGenerator[EngineEvent, None]:
        """The upstream's reasoning, until its answer begins (left in the stream) or the
        budget is spent; then ``Done`` as if the think block's end had been written."""
        prompt = len(request.prompt)
        generated = 0
        admitted = False
        while True:
            data = await _peek(deltas)
            if data is None:
                raise EngineFailure("The model server ended the reply before it was done.")
            if not admitted:
                admitted = True
                yield Admitted(_cached(data))
            delta = _delta(data)
            text = delta.get("reasoning_content") or delta.get("reasoning")
            if not text:
                if delta.get("content") or delta.get("tool_calls") or _finished(data):
                    deltas.push(data)
                    yield Done("stop", prompt, generated, _cached(data), end)
                    return
                continue
            generated += 1
            yield Piece(text, tokens=1)
            if generated >= request.max_tokens:
                yield Done("length", prompt, generated, _cached(data))
                return

    async def _answer(
        self,
        request: EngineRequest,
        deltas: AsyncIterator[Mapping[str, Any]],
        reasoned: int,
    ) -> AsyncGenerator[EngineEvent, None]:
        """The answer: content as pieces (stop strings applied), tool calls as
        ``<tool_call>`` blocks, and ``Done`` with the upstream's usage less the
        ``reasoned`` tokens the first phase reported."""
        pieces = PieceAssembler(request.stop)
        prompt = len(request.prompt)
        generated, cached, admitted = 0, 0, reasoned > 0
        calls: dict[int, dict[str, str]] = {}
        reason: str | None = None
        async for data in deltas:
            cached = _cached(data) or cached
            if not admitted:
                admitted = True
                yield Admitted(cached)
            usage = data.get("usage") or {}
            if usage.get("completion_tokens") is not None:
                generated = max(generated, int(usage["completion_tokens"]) - reasoned)
            delta = _delta(data)
            if delta.get("reasoning_content") or delta.get("reasoning"):
                continue  # past the budget, or a reasoning the request did not ask for
            for call in delta.get("tool_calls") or ():
                _add_call(calls, call)
            if text := delta.get("content"):
                generated += 1
                yield pieces.token(text.encode())
                if pieces.stopped:
                    yield Done("stop", prompt, generated, cached, pieces.matched)
                    return
                if generated >= request.max_tokens:
                    reason = "length"
                    break
            reason = reason or _finished(data)
        for call in calls.values():
            yield pieces.token(_tool_call_text(call).encode())
        if (tail := pieces.end()) is not None:
            yield tail
        if reason is None:
            raise EngineFailure("The model server ended the reply before it was done.")
        yield Done("length" if reason == "length" else "stop", prompt, generated, cached)

    def _park(
        self,
        request: EngineRequest,
        stream: AbstractAsyncContextManager[Any],
        deltas: _Pushback,
        reasoning_tokens: int,
    ) -> None:
        self._parked.append(
            _Parked(request.namespace, request.prompt, stream, deltas, reasoning_tokens)
        )
        loop = asyncio.get_running_loop()
        loop.call_later(PARK_S, lambda: loop.create_task(self._expire()))

    def _claim(self, request: EngineRequest) -> _Parked | None:
        for parked in self._parked:
            n = len(parked.prompt)
            if parked.namespace == request.namespace and request.prompt[:n] == parked.prompt:
                self._parked.remove(parked)
                return parked
        return None

    async def _expire(self) -> None:
        now = time.monotonic()
        expired = [p for p in self._parked if p.until <= now]
        for parked in expired:
            self._parked.remove(parked)
            with contextlib.suppress(Exception):
                await parked.stream.__aexit__(None, None, None)

    async def health(self) -> EngineHealth:
        self._upstreams.start()
        return self._upstreams.health()

    async def close(self) -> None:
        for parked in self._parked:
            with contextlib.suppress(Exception):
                await parked.stream.__aexit__(None, None, None)
        self._parked.clear()
        await self._upstreams.close()


class _Pushback:
    """An async iterator with one event pushed back (where the reasoning phase stopped)."""

    def __init__(self, events: AsyncIterator[Mapping[str, Any]]) -> None:
        self._events = events
        self._held: list[Mapping[str, Any]] = []

    def __aiter__(self) -> _Pushback:
        return self

    async def __anext__(self) -> Mapping[str, Any]:
        if self._held:
            return self._held.pop()
        return await anext(self._events)

    def push(self, event: Mapping[str, Any]) -> None:
        self._held.append(event)


async def _peek(deltas: AsyncIterator[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    try:
        return await anext(deltas)
    except StopAsyncIteration:
        return None


def _delta(data: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = data.get("choices") or ()
    delta: Mapping[str, Any] = choices[0].get("delta") or {} if choices else {}
    return delta


def _finished(data: Mapping[str, Any]) -> str | None:
    choices = data.get("choices") or ()
    reason = choices[0].get("finish_reason") if choices else None
    return str(reason) if reason else None


def _cached(data: Mapping[str, Any]) -> int:
    usage = data.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0)


def _add_call(calls: dict[int, dict[str, str]], delta: Mapping[str, Any]) -> None:
    call = calls.setdefault(int(delta.get("index", len(calls))), {"name": "", "arguments": ""})
    function = delta.get("function") or {}
    call["name"] += function.get("name") or ""
    call["arguments"] += function.get("arguments") or ""


def _tool_call_text(call: Mapping[str, str]) -> str:
    try:
        arguments = json.loads(call["arguments"] or "{}")
    except ValueError:
        raise EngineFailure(
            "The model server wrote tool-call arguments that are not JSON."
        ) from None
    written = json.dumps({"name": call["name"], "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{written}\n</tool_call>"
