"""Running one reply on an engine: the reasoning, then the answer, as core events.

In thinking mode the reasoning is generated first, up to its budget and the think
block's end marker; the answer is then a second generation whose prompt is the first
one plus the reasoning and the closing marker (the engine finds that prefix in its
KV cache, so nothing is read twice). Answers are parsed for tool calls when the
request has tools.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, replace

from deepwell.chat.markers import MarkerFilter
from deepwell.chat.toolcalls import Segment, ToolCallFormat, ToolCallParser
from deepwell.core.calls import ReplyCalls
from deepwell.core.events import (
    Event,
    Finished,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
)
from deepwell.core.metering import Meter
from deepwell.engine.base import Done, Engine, EngineRequest, Piece
from deepwell.vocabulary import TokenLogprob


@dataclass(frozen=True, slots=True)
class ThinkStep:
    """The reasoning phase: at most ``budget`` tokens, ending at ``end``.

    The answer follows ``close`` after a reasoning that ended by itself, and
    ``close_early`` after one cut by the budget; then ``answer_prefix`` (chat prefix
    completion), which the answer continues. ``drop`` are the think markers, kept out
    of the answer's text.
    """

    budget: int
    end: str
    close: str
    close_early: str
    answer_prefix: str = ""
    drop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """One reply. ``request`` holds the prompt (ending where the reply begins: inside
    the think block when ``think`` is set), ``max_tokens`` for reasoning and answer
    together, and the answer's stop strings and constraint. With ``tools`` the answer
    is parsed for calls in that format."""

    request: EngineRequest
    think: ThinkStep | None = None
    tools: ToolCallFormat | None = None
    tool_names: frozenset[str] = frozenset()
    # Calls are constrained to their format: their arguments stream as they come.
    stream_calls: bool = False
    # At most one call: the reply ends when its first call does.
    single_call: bool = False


async def decode(engine: Engine, plan: Plan, meter: Meter) -> AsyncGenerator[Event, None]:
    """Reasoning deltas, answer deltas and tool calls, then one ``Finished``; ``meter``
    counts the tokens as they come.

    Closing the iterator aborts whichever generation is running.
    """
    answer = plan.request
    if plan.think is not None:
        reasoning: list[str] = []
        done: Done | None = None
        steps = _think(engine, plan.request, plan.think, reasoning, meter)
        async with aclosing(steps) as events:
            async for step in events:
                if isinstance(step, Done):
                    done = step
                else:
                    yield step
        if done is not None and (
            done.reason == "insufficient_system_resource"
            or done.completion_tokens >= plan.request.max_tokens
        ):
            yield Finished(done.reason, meter.usage())
            return
        answer = _answer_request(engine, plan.request, plan.think, "".join(reasoning), done)
    parser = (
        plan.tools.parser(plan.tool_names, stream=plan.stream_calls)
        if plan.tools is not None
        else None
    )
    drop = plan.think.drop if plan.think is not None else ()
    reader = _AnswerReader(parser, drop, single_call=plan.single_call)
    prompt = len(plan.request.prompt)
    async with aclosing(_answer(engine, answer, reader, meter, prompt)) as events:
        async for event in events:
            yield event


async def _think(
    engine: Engine, request: EngineRequest, think: ThinkStep, text: list[str], meter: Meter
) -> AsyncGenerator[ReasoningDelta | Done, None]:
    """The reasoning as deltas (collected into ``text``), then the engine's ``Done``;
    nothing when the budget is zero."""
    budget = min(think.budget, request.max_tokens)
    if budget <= 0:
        return
    step = EngineRequest(
        prompt=request.prompt,
        max_tokens=budget,
        sampling=request.sampling,
        stop=(think.end,),
        namespace=request.namespace,
        logprobs=request.logprobs,
    )
    async with aclosing(engine.generate(step)) as events:
        async for event in events:
            meter.count(event, len(request.prompt), reasoning=True)
            if isinstance(event, Done):
                yield event
            elif isinstance(event, Piece) and (event.text or event.logprobs):
                text.append(event.text)
                yield ReasoningDelta(event.text, event.logprobs)


def _answer_request(
    engine: Engine, request: EngineRequest, think: ThinkStep, reasoning: str, done: Done | None
) -> EngineRequest:
    """The answer's request: the prompt, the reasoning and the closing marker (with
    special tokens), then the client's answer prefix (text, never control tokens)."""
    spent = done.completion_tokens if done is not None else 0
    cut = done is not None and done.reason == "length"
    written = reasoning + (think.close_early if cut else think.close)
    added = engine.tokenize(written, special=True)
    added += engine.tokenize(think.answer_prefix, special=False)
    return replace(
        request, prompt=request.prompt + tuple(added), max_tokens=request.max_tokens - spent
    )


async def _answer(
    engine: Engine, request: EngineRequest, reader: _AnswerReader, meter: Meter, prompt: int
) -> AsyncGenerator[Event, None]:
    async with aclosing(engine.generate(request)) as events:
        async for event in events:
            meter.count(event, prompt)
            if isinstance(event, Piece):
                for out in reader.feed(event):
                    yield out
                if reader.ended:
                    yield Finished("tool_calls", meter.usage())
                    return
            elif isinstance(event, Done):
                for out in reader.flush():
                    yield out
                stop = event.stop_sequence if event.reason == "stop" else None
                yield Finished(_reason(event, reader.calls), meter.usage(), stop)
                return


class _AnswerReader:
    """Turns the answer's pieces into text deltas and tool calls.

    ``drop`` markers (a think block's, which a model may write again in its answer)
    never reach the text. Text takes the logprobs of the tokens gathered so far; a
    call drops them (its markup is no answer text).
    """

    def __init__(
        self, parser: ToolCallParser | None, drop: tuple[str, ...], *, single_call: bool = False
    ) -> None:
        self._parser = parser
        self._single_call = single_call
        self._filter = MarkerFilter(drop) if drop else None
        self._pending: list[TokenLogprob] = []
        self._calls = ReplyCalls()

    @property
    def calls(self) -> int:
        """Calls written to their end so far."""
        return self._calls.count

    @property
    def ended(self) -> bool:
        """A call was made again, word for word, or the one call allowed is made: the
        reply should end here."""
        return self._calls.repeated or (self._single_call and self._calls.count > 0)

    def feed(self, piece: Piece) -> list[TextDelta | ToolCallDelta]:
        text = self._filter.feed(piece.text) if self._filter is not None else piece.text
        self._pending.extend(piece.logprobs)
        if self._parser is None:
            return self._text([text])
        return self._events(self._parser.feed(text))

    def flush(self) -> list[TextDelta | ToolCallDelta]:
        tail = self._filter.flush() if self._filter is not None else ""
        if self._parser is None:
            return self._text([tail])
        return self._events([*self._parser.feed(tail), *self._parser.flush()])

    def _text(self, texts: list[str]) -> list[TextDelta | ToolCallDelta]:
        text = "".join(texts)
        if not text and not self._pending:
            return []
        delta = TextDelta(text, tuple(self._pending))
        self._pending.clear()
        return [delta]

    def _events(self, segments: list[Segment]) -> list[TextDelta | ToolCallDelta]:
        out: list[TextDelta | ToolCallDelta] = []
        for segment in segments:
            if self.ended:
                break
            if isinstance(segment, str):
                out.append(TextDelta(segment, tuple(self._pending)))
            else:
                out.extend(self._calls.add(segment))
            self._pending.clear()
        return out


def _reason(done: Done, calls: int) -> FinishReason:
    return "tool_calls" if calls and done.reason == "stop" else done.reason
