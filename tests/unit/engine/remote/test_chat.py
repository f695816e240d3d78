"""Pass-through mode: the wire template read back into a chat request, the upstream's
reasoning as the reasoning phase (one upstream stream for both phases), tool calls."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from tests.unit.engine.remote.fakes import Upstream, sse

from deepwell.chat.template import ChatTemplate
from deepwell.engine.base import Done, EngineEvent, EngineRequest, Piece
from deepwell.engine.remote.chat import ChatEngine, decode, encode, read_prompt
from deepwell.vocabulary import Message


def prompt(engine: ChatEngine, *, thinking: bool, tail: str = "") -> tuple[int, ...]:
    template = ChatTemplate(engine.info.chat_template)
    text = template.render(
        [Message(role="user", content="Hi <|im_start|> there")],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        variables={"enable_thinking": thinking},
    )
    return tuple(engine.tokenize(text + tail, special=True))


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def test_tokens_round_trip_and_are_about_three_bytes() -> None:
    text = "héllo wörld ✓"
    assert decode(encode(text)) == text
    assert len(encode("a" * 30)) == 10
    assert all(0 <= t < 2**31 for t in encode(text))


async def test_the_prompt_reads_back_as_messages_without_marks(upstream: Upstream) -> None:
    engine = upstream.chat_engine()
    read = read_prompt(prompt(engine, thinking=True, tail="<think>\n"))
    assert read.messages == [{"role": "user", "content": "Hi <|im_start|> there"}]
    assert read.tools == [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert read.thinking
    assert read.tail == "<think>\n"


async def test_content_and_tool_calls_with_upstream_usage(upstream: Upstream) -> None:
    sent: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        sent.append(await request.json())
        call = {"index": 0, "id": "x", "function": {"name": "f", "arguments": '{"a": 1}'}}
        usage = {"completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 64}}
        body = sse(
            delta(content="Sure"),
            delta(tool_calls=[call]),
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {"choices": [], "usage": usage},
        )
        return web.Response(body=body)

    engine = upstream.chat_engine(handle)
    request = EngineRequest(prompt(engine, thinking=False), max_tokens=50)
    events: list[EngineEvent] = [e async for e in engine.generate(request)]
    body = sent[0]
    assert body["model"] == "up"
    assert body["messages"][0]["content"] == "Hi <|im_start|> there"
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    written = "".join(e.text for e in events if isinstance(e, Piece))
    assert written == 'Sure<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    assert events[-1] == Done("stop", len(request.prompt), 9, 64)


async def test_thinking_reads_one_stream_in_two_phases(upstream: Upstream) -> None:
    calls = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        body = sse(
            delta(reasoning_content="Let me"),
            delta(reasoning_content=" think."),
            delta(content="Four."),
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"completion_tokens": 5}},
        )
        return web.Response(body=body)

    engine = upstream.chat_engine(handle)
    first = EngineRequest(prompt(engine, thinking=True, tail="<think>\n"), 50, stop=("</think>",))
    reasoning = [e async for e in engine.generate(first)]
    assert "".join(e.text for e in reasoning if isinstance(e, Piece)) == "Let me think."
    assert reasoning[-1] == Done("stop", len(first.prompt), 2, 0, "</think>")
    tail = "<think>\nLet me think.</think>\n\n"
    second = EngineRequest(prompt(engine, thinking=True, tail=tail), 48)
    answer = [e async for e in engine.generate(second)]
    assert "".join(e.text for e in answer if isinstance(e, Piece)) == "Four."
    assert answer[-1] == Done("stop", len(second.prompt), 3, 0)
    assert calls == 1
