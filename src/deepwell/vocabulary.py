"""The words every layer shares: messages, tools, sampling, callers and token logprobs.

Frozen dataclasses, free of any wire format and of every other deepwell module, so
that any package may import them without depending on the layers above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling parameters; ``None`` means the model's default."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is its JSON Schema (None: no
    parameters). ``strict`` asks for arguments constrained to the schema (``/beta``)."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``none``, ``auto``, ``required``, or ``function`` with the ``name`` to call."""

    mode: Literal["none", "auto", "required", "function"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller. Limits, balances and caches belong to the account."""

    account_id: int
    account: str
    key_id: str


@dataclass(frozen=True, slots=True)
class TopLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """A generated token, its log-probability under the model, and the likeliest tokens."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[TopLogprob, ...] = ()
