"""decode: the reasoning phase, the answer on the same prefix, tool calls and usage."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from deepwell.chat.grammar import JSON_OBJECT
from deepwell.chat.toolcalls import HERMES
from deepwell.core.decoding import Plan, ThinkStep, decode
from deepwell.core.events import (
    Event,
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from deepwell.core.metering import Meter
from deepwell.engine.base import Done, EngineEvent, EngineRequest, Piece
from deepwell.engine.fake import FakeEngine
from deepwell.vocabulary import Sampling, TokenLogprob

PROMPT = (1, 2, 3)
THINK = ThinkStep(
    budget=8,
    end="</think>",
    close="</think>\n\n",
    close_early="\nTime is up.</think>\n\n",
    drop=("<think>", "</think>"),
)


class Scripted(FakeEngine):
    """Each generation plays the next script; characters are tokens."""

    def __init__(self, *scripts: list[EngineEvent]) -> None:
        super().__init__()
        self.scripts = list(scripts)
        self.requests: list[EngineRequest] = []

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        self.requests.append(request)
        for event in self.scripts.pop(0):
            yield event


def plan(max_tokens: int = 100, think: ThinkStep | None = THINK, **fields: object) -> Plan:
    request = EngineRequest(
        prompt=PROMPT,
        max_tokens=max_tokens,
        sampling=Sampling(temperature=0.6),
        stop=("STOP",),
        namespace="ns",
        constraint=JSON_OBJECT,
        logprobs=None,
    )
    return Plan(request, think, **fields)  # type: ignore[arg-type]


async def events_of(engine: Scripted, p: Plan) -> list[Event]:
    return [event async for event in decode(engine, p, Meter(block_tokens=1))]


async def test_reasoning_then_answer_on_the_same_prefix() -> None:
    engine = Scripted(
        [Piece("Let "), Piece("me think."), Done("stop", 3, 5, 2)],
        [Piece("Hi"), Piece("!"), Done("stop", 30, 2, 20)],
    )
    out = await events_of(engine, plan())
    assert out == [
        ReasoningDelta("Let "),
        ReasoningDelta("me think."),
        TextDelta("Hi"),
        TextDelta("!"),
        Finished(
            "stop",
            Usage(prompt_tokens=3, completion_tokens=7, cache_hit_tokens=2, reasoning_tokens=5),
        ),
    ]
    first, second = engine.requests
    assert first.prompt == PROMPT
    assert first.max_tokens == 8
    assert first.stop == ("</think>",)
    assert first.constraint is None
    assert first.sampling == Sampling(temperature=0.6)
    # The answer continues the reasoning and its closing marker; the budget is what is left.
    assert second.prompt == PROMPT + tuple(ord(c) for c in "Let me think.</think>\n\n")
    assert second.max_tokens == 95
    assert (second.stop, second.constraint, second.namespace) == (("STOP",), JSON_OBJECT, "ns")


async def test_a_reasoning_cut_by_its_budget_is_closed_early() -> None:
    engine = Scripted(
        [Piece("abcdefgh"), Done("length", 3, 8)],
        [Piece("ok"), Done("stop", 40, 2)],
    )
    out = await events_of(engine, plan())
    assert engine.requests[1].prompt[len(PROMPT) :] == tuple(
        ord(c) for c in "abcdefgh\nTime is up.</think>\n\n"
    )
    assert out[-1] == Finished(
        "stop", Usage(prompt_tokens=3, completion_tokens=10, reasoning_tokens=8)
    )


async def test_no_room_left_for_the_answer_ends_with_length() -> None:
    engine = Scripted([Piece("abcd"), Done("length", 3, 4)])
    out = await events_of(engine, plan(max_tokens=4, think=THINK))
    assert out == [
        ReasoningDelta("abcd"),
        Finished("length", Usage(prompt_tokens=3, completion_tokens=4, reasoning_tokens=4)),
    ]
    assert len(engine.requests) == 1


async def test_a_zero_budget_skips_the_reasoning() -> None:
    engine = Scripted([Piece("ok"), Done("stop", 9, 2, 3)])
    out = await events_of(engine, plan(think=ThinkStep(0, "</think>", "</think>\n", "x")))
    (request,) = engine.requests
    assert request.prompt == PROMPT + tuple(ord(c) for c in "</think>\n")
    assert out == [
        TextDelta("ok"),
        Finished("stop", Usage(prompt_tokens=3, completion_tokens=2, cache_hit_tokens=3)),
    ]


async def test_without_thinking_one_generation() -> None:
    engine = Scripted([Piece("ok"), Done("length", 3, 2, 1)])
    out = await events_of(engine, plan(think=None))
    assert engine.requests[0].prompt == PROMPT
    assert out == [
        TextDelta("ok"),
        Finished("length", Usage(prompt_tokens=3, completion_tokens=2, cache_hit_tokens=1)),
    ]


async def test_an_engine_out_of_room_while_reasoning_ends_the_reply() -> None:
    engine = Scripted([Piece("ab"), Done("insufficient_system_resource", 3, 2)])
    out = await events_of(engine, plan())
    assert isinstance(out[-1], Finished)
    assert out[-1].reason == "insufficient_system_resource"
    assert len(engine.requests) == 1


async def test_the_answer_continues_a_prefix() -> None:
    think = ThinkStep(4, "</think>", "</think>", "", answer_prefix="```py\n")
    engine = Scripted([Piece("r"), Done("stop", 3, 1)], [Piece("x"), Done("stop", 9, 1)])
    await events_of(engine, plan(think=think))
    assert engine.requests[1].prompt[len(PROMPT) :] == tuple(ord(c) for c in "r</think>```py\n")


async def test_think_markers_never_reach_the_answer() -> None:
    engine = Scripted(
        [Piece("r"), Done("stop", 3, 1)],
        [Piece("A</th"), Piece("ink>B<thi"), Piece("nk>C"), Done("stop", 9, 3)],
    )
    out = await events_of(engine, plan())
    text = "".join(e.text for e in out if isinstance(e, TextDelta))
    assert text == "ABC"


async def test_tool_calls_become_calls_with_ids_and_indexes() -> None:
    reply = (
        'Checking.<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>'
    )
    engine = Scripted([*(Piece(c) for c in reply), Done("stop", 3, len(reply))])
    out = await events_of(engine, plan(think=None, tools=HERMES, tool_names=frozenset("fg")))
    calls = [e for e in out if isinstance(e, ToolCallDelta)]
    assert [(c.index, c.name, c.arguments) for c in calls] == [(0, "f", '{"a": 1}'), (1, "g", "{}")]
    assert all(re.fullmatch(r"call_0[01]_[A-Za-z0-9]{24}", c.id or "") for c in calls)
    assert (calls[0].id or "").startswith("call_00_")
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == "Checking."
    finished = out[-1]
    assert isinstance(finished, Finished)
    assert finished.reason == "tool_calls"
    # Calls come after the text.
    kinds = [type(e).__name__ for e in out]
    assert kinds.index("ToolCallDelta") > max(i for i, k in enumerate(kinds) if k == "TextDelta")


async def test_a_call_made_again_word_for_word_ends_the_reply() -> None:
    f = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n'
    g = '<tool_call>\n{"name": "f", "arguments": {"a": 2}}\n</tool_call>\n'
    reply = f + g + f + g + f
    engine = Scripted([*(Piece(c, tokens=1) for c in reply), Done("length", 3, len(reply))])
    out = await events_of(engine, plan(think=None, tools=HERMES))
    calls = [(e.name, e.arguments) for e in out if isinstance(e, ToolCallDelta)]
    assert calls == [("f", '{"a": 1}'), ("f", '{"a": 2}')]
    finished = out[-1]
    assert isinstance(finished, Finished)
    assert finished.reason == "tool_calls"
    # The tokens of the repeated call were generated, and count.
    assert finished.usage.completion_tokens == len(f + g + f.rstrip("\n"))


async def test_a_single_call_reply_ends_at_its_first_call() -> None:
    f = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n'
    g = '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>'
    for pieces in ([f + g], list(f + g)):
        engine = Scripted([*(Piece(p) for p in pieces), Done("stop", 3, len(f + g))])
        out = await events_of(engine, plan(think=None, tools=HERMES, single_call=True))
        calls = [(e.name, e.arguments) for e in out if isinstance(e, ToolCallDelta)]
        assert calls == [("f", '{"a": 1}')]
        finished = out[-1]
        assert isinstance(finished, Finished)
        assert finished.reason == "tool_calls"


async def test_calls_cut_by_the_budget_keep_length() -> None:
    reply = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call><tool_call>{"na'
    engine = Scripted([Piece(reply), Done("length", 3, 30)])
    out = await events_of(engine, plan(think=None, tools=HERMES))
    assert isinstance(out[-1], Finished)
    assert out[-1].reason == "length"


def lp(token: str) -> TokenLogprob:
    return TokenLogprob(token, -0.5, tuple(token.encode()))


async def test_logprobs_ride_with_their_text() -> None:
    engine = Scripted(
        [Piece("r", (lp("r"),)), Done("stop", 3, 1)],
        [Piece("a", (lp("a"),)), Piece("", (lp("?"),)), Piece("b", (lp("b"),)), Done("stop", 9, 3)],
    )
    out = await events_of(engine, plan())
    assert out[0] == ReasoningDelta("r", (lp("r"),))
    answer = [e for e in out if isinstance(e, TextDelta)]
    assert [t for e in answer for t in e.logprobs] == [lp("a"), lp("?"), lp("b")]


async def test_logprobs_of_call_markup_are_dropped() -> None:
    call = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'
    engine = Scripted([Piece("Hi", (lp("Hi"),)), Piece(call, (lp("<"),)), Done("stop", 3, 2)])
    out = await events_of(engine, plan(think=None, tools=HERMES))
    assert [t for e in out if isinstance(e, TextDelta) for t in e.logprobs] == [lp("Hi")]
