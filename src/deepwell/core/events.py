"""What a generation produces, in order: deltas, then exactly one ``Finished``.

Dialect encoders are folds over these events; they never see the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deepwell.vocabulary import TokenLogprob

FinishReason = Literal["stop", "length", "tool_calls", "insufficient_system_resource"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cache_hit_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def cache_miss_tokens(self) -> int:
        return self.prompt_tokens - self.cache_hit_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """The request still waits in the queue for the engine: nothing to show yet, but the
    connection should hear from the server (a keep-alive comment, a blank line)."""


@dataclass(frozen=True, slots=True)
class Started:
    """The request was admitted and resolved; ``model`` is the public id to echo."""

    id: str
    model: str
    created: int
    thinking: bool
    fingerprint: str
    # Whether deltas carry the logprobs of their tokens.
    logprobs: bool = False
    # The prompt's length in tokens (how many of them the cache had is known at the end).
    prompt_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text, with the logprobs of its tokens when the request asked for them."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A tool call, or a piece of one: ``index`` counts calls from 0 in the reply. The
    first piece of a call carries its ``id`` and ``name``; the pieces that follow carry
    only more of its ``arguments`` (a JSON string, once all are joined)."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a reply; ``stop_sequence``: the client's stop string that ended it."""

    reason: FinishReason
    usage: Usage
    stop_sequence: str | None = None


Event = Started | TextDelta | ReasoningDelta | ToolCallDelta | Finished
