"""Core events → Messages API replies: one ``message`` object, or its stream events.

A reply's blocks come in the order the model wrote them: ``thinking`` (signed with the
message id, as the hosted API does), ``text``, ``tool_use``. ``usage`` counts the prompt
tokens the cache did not have as ``input_tokens`` and those it had as
``cache_read_input_tokens``. The stream opens with ``message_start`` and a ``ping``,
sends each block as ``content_block_start``, its deltas and ``content_block_stop``
(indices from 0, contiguous), and ends with ``message_delta`` (the stop reason and the
exact usage) and ``message_stop``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable
from typing import Any, Literal

from deepwell.core.events import (
    Event,
    Finished,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)

log = logging.getLogger(__name__)

Json = dict[str, Any]
StreamEvent = tuple[str, Json]
BlockKind = Literal["thinking", "text", "tool_use"]


def message_id(started: Started) -> str:
    return "msg_" + started.id.replace("-", "")


def tool_use_id(call_id: str) -> str:
    return "toolu_" + call_id.removeprefix("call_")


def stop_reason(finished: Finished) -> str:
    """``end_turn``, ``stop_sequence``, ``max_tokens`` or ``tool_use``. An engine that
    ran out of room (``insufficient_system_resource``) ends the turn."""
    if finished.reason == "length":
        return "max_tokens"
    if finished.reason == "tool_calls":
        return "tool_use"
    return "stop_sequence" if finished.stop_sequence is not None else "end_turn"


def usage(used: Usage) -> Json:
    return {
        "input_tokens": used.cache_miss_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": used.cache_hit_tokens,
        "output_tokens": used.completion_tokens,
    }


def _arguments(text: str) -> Any:
    """A call's ``input``: its arguments as JSON, or ``{}`` when they are not an object
    (a call cut short by ``max_tokens``)."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        log.info("a tool call's arguments are not JSON (cut short?): sent as {}")
        return {}
    return value if isinstance(value, dict) else {}


async def collect(events: AsyncIterable[Event]) -> Json:
    """The whole reply as one ``message``."""
    started: Started | None = None
    blocks: list[Json] = []
    arguments: dict[int, list[str]] = {}
    async for event in events:
        if isinstance(event, Started):
            started = event
        elif isinstance(event, ReasoningDelta | TextDelta):
            kind = "thinking" if isinstance(event, ReasoningDelta) else "text"
            if not blocks or blocks[-1]["type"] != kind:
                blocks.append({"type": kind, kind: ""})
            blocks[-1][kind] += event.text
        elif isinstance(event, ToolCallDelta):
            if event.id is not None:
                blocks.append({"type": "tool_use", "id": tool_use_id(event.id), "name": event.name})
                arguments[len(blocks) - 1] = []
            arguments[len(blocks) - 1].append(event.arguments)
        elif isinstance(event, Finished):
            assert started is not None
            for index, parts in arguments.items():
                blocks[index]["input"] = _arguments("".join(parts))
            return _message(started, blocks, event)
    raise RuntimeError("a generation ended without Finished")


def _message(started: Started, blocks: list[Json], finished: Finished | None) -> Json:
    mid = message_id(started)
    for block in blocks:
        if block["type"] == "thinking":
            block["signature"] = mid
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": started.model,
        "content": [b for b in blocks if b["type"] != "text" or b["text"]],
        "stop_reason": stop_reason(finished) if finished is not None else None,
        "stop_sequence": finished.stop_sequence if finished is not None else None,
        "usage": usage(finished.usage)
        if finished is not None
        else usage(Usage(prompt_tokens=started.prompt_tokens, completion_tokens=0)),
    }


class StreamEncoder:
    """Core events → Messages stream events, for one reply."""

    def __init__(self) -> None:
        self._started: Started | None = None
        self._open: BlockKind | None = None
        self._index = -1

    def encode(self, event: Event) -> list[StreamEvent]:
        if isinstance(event, Started):
            self._started = event
            return [
                ("message_start", {"type": "message_start", "message": _message(event, [], None)}),
                ("ping", {"type": "ping"}),
            ]
        if isinstance(event, ReasoningDelta):
            return self._delta("thinking", {"type": "thinking_delta", "thinking": event.text})
        if isinstance(event, TextDelta):
            return self._delta("text", {"type": "text_delta", "text": event.text})
        if isinstance(event, ToolCallDelta):
            return self._call(event)
        return [*self._close(), *self._end(event)]

    def _delta(self, kind: BlockKind, delta: Json) -> list[StreamEvent]:
        text = delta.get(kind)
        if not text:
            return []
        out = self._switch(kind, {"type": kind, kind: ""} | _signature_slot(kind))
        out.append(("content_block_delta", self._at("content_block_delta", delta=delta)))
        return out

    def _call(self, call: ToolCallDelta) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if call.id is not None:
            block: Json = {
                "type": "tool_use",
                "id": tool_use_id(call.id),
                "name": call.name,
                "input": {},
            }
            out += [*self._close(), *self._begin("tool_use", block)]
        if call.arguments:
            delta = {"type": "input_json_delta", "partial_json": call.arguments}
            out.append(("content_block_delta", self._at("content_block_delta", delta=delta)))
        return out

    def _switch(self, kind: BlockKind, block: Json) -> list[StreamEvent]:
        if self._open == kind:
            return []
        return [*self._close(), *self._begin(kind, block)]

    def _begin(self, kind: BlockKind, block: Json) -> list[StreamEvent]:
        self._open = kind
        self._index += 1
        return [("content_block_start", self._at("content_block_start", content_block=block))]

    def _close(self) -> list[StreamEvent]:
        if self._open is None:
            return []
        out: list[StreamEvent] = []
        if self._open == "thinking":
            assert self._started is not None
            delta = {"type": "signature_delta", "signature": message_id(self._started)}
            out.append(("content_block_delta", self._at("content_block_delta", delta=delta)))
        out.append(("content_block_stop", self._at("content_block_stop")))
        self._open = None
        return out

    def _end(self, finished: Finished) -> list[StreamEvent]:
        delta = {"stop_reason": stop_reason(finished), "stop_sequence": finished.stop_sequence}
        return [
            (
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": usage(finished.usage)},
            ),
            ("message_stop", {"type": "message_stop"}),
        ]

    def _at(self, kind: str, **fields: Any) -> Json:
        return {"type": kind, "index": self._index, **fields}


def _signature_slot(kind: BlockKind) -> Json:
    """A thinking block starts with an empty signature; ``signature_delta`` fills it."""
    return {"signature": ""} if kind == "thinking" else {}
