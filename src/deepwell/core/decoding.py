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

from deepwell.chat.toolcalls import ParsedCall, ToolCallFormat, ToolCallParser, call_id
from deepwell.core.events import (
    Event,
    Finished,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from deepwell.engine.base import Done, Engine, EngineRequest, TokenLogprob


@dataclass(frozen=True, slots=True)
class ThinkStep:
    """The reasoning phase: at most ``budget`` tokens, ending at ``end``.

    The answer follows ``close`` after a reasoning that ended by itself, and
    ``close_early`` after one cut by the budget; then ``answer_prefix`` (chat prefix
    completion), which the answer continues.
    """

    budget: int
    end: str
    close: str
    close_early: str
    answer_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """One reply. ``request`` holds the prompt (ending where the reply begins: inside
    the think block when ``think`` is set), ``max_tokens`` for reasoning and answer
    together, and the answer's stop strings and grammar. With ``tools`` the answer is
    parsed for calls in that format."""

    request: EngineRequest
    think: ThinkStep | None = None
    tools: ToolCallFormat | None = None
    tool_names: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Tally:
    # From the first generation that ran; the prompt's length when only the answer ran
    # after an empty reasoning (its prompt then holds the closing marker too).
    prompt: int | None = None
    cached: int | None = None
    reasoning: int = 0
    answer: int = 0

    def usage(self) -> Usage:
        prompt = self.prompt or 0
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=self.reasoning + self.answer,
            cache_hit_tokens=min(self.cached or 0, prompt),
            reasoning_tokens=self.reasoning,
        )


async def decode(engine: Engine, plan: Plan) -> AsyncGenerator[Event, None]:
    """Reasoning deltas, answer deltas and tool calls, then one ``Finished``.

    Closing the iterator aborts whichever generation is running.
    """
    tally = _Tally(prompt=len(plan.request.prompt) if plan.think is not None else None)
    answer = plan.request
    if plan.think is not None:
        reasoning: list[str] = []
        done: Done | None = None
        async with aclosing(_think(engine, plan.request, plan.think, reasoning)) as steps:
            async for step in steps:
                if isinstance(step, Done):
                    done = step
                else:
                    yield step
        if done is not None:
            tally.reasoning, tally.cached = done.completion_tokens, done.cached_tokens
            tally.prompt = done.prompt_tokens
            if done.reason == "insufficient_system_resource" or (
                done.completion_tokens >= plan.request.max_tokens
            ):
                yield Finished(done.reason, tally.usage())
                return
        answer = _answer_request(engine, plan.request, plan.think, "".join(reasoning), done)
    parser = plan.tools.parser(plan.tool_names) if plan.tools is not None else None
    async with aclosing(_answer(engine, answer, parser, tally)) as events:
        async for event in events:
            yield event


async def _think(
    engine: Engine, request: EngineRequest, think: ThinkStep, text: list[str]
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
            if isinstance(event, Done):
                yield event
            elif event.text or event.logprobs:
                text.append(event.text)
                yield ReasoningDelta(event.text, event.logprobs)


def _answer_request(
    engine: Engine, request: EngineRequest, think: ThinkStep, reasoning: str, done: Done | None
) -> EngineRequest:
    spent = done.completion_tokens if done is not None else 0
    cut = done is not None and done.reason == "length"
    written = reasoning + (think.close_early if cut else think.close) + think.answer_prefix
    return replace(
        request,
        prompt=request.prompt + tuple(engine.tokenize(written, special=True)),
        max_tokens=request.max_tokens - spent,
    )


async def _answer(
    engine: Engine, request: EngineRequest, parser: ToolCallParser | None, tally: _Tally
) -> AsyncGenerator[Event, None]:
    calls = 0
    pending: list[TokenLogprob] = []
    async with aclosing(engine.generate(request)) as events:
        async for event in events:
            if isinstance(event, Done):
                if parser is not None:
                    for out in _segments(parser.flush(), pending, calls):
                        calls += isinstance(out, ToolCallDelta)
                        yield out
                tally.answer = event.completion_tokens
                if tally.prompt is None:
                    tally.prompt = event.prompt_tokens
                if tally.cached is None:
                    tally.cached = event.cached_tokens
                yield Finished(_reason(event, calls), tally.usage())
                return
            if parser is None:
                if event.text or event.logprobs:
                    yield TextDelta(event.text, event.logprobs)
                continue
            pending.extend(event.logprobs)
            for out in _segments(parser.feed(event.text), pending, calls):
                calls += isinstance(out, ToolCallDelta)
                yield out


def _segments(
    segments: list[str | ParsedCall], pending: list[TokenLogprob], calls: int
) -> list[TextDelta | ToolCallDelta]:
    """Parser output as events: text takes the logprobs gathered so far, a call (its
    markup's tokens are no answer text) drops them."""
    out: list[TextDelta | ToolCallDelta] = []
    for segment in segments:
        if isinstance(segment, str):
            out.append(TextDelta(segment, tuple(pending)))
        else:
            index = calls + sum(isinstance(o, ToolCallDelta) for o in out)
            out.append(ToolCallDelta(index, call_id(index), segment.name, segment.arguments))
        pending.clear()
    return out


def _reason(done: Done, calls: int) -> FinishReason:
    return "tool_calls" if calls and done.reason == "stop" else done.reason
