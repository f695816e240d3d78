"""The engine protocol: token ids in, text pieces out.

An engine owns one loaded model. It knows nothing of accounts, dialects or chat
templates; the core renders prompts to token ids and folds the engine's events
into a response. A generation yields ``Admitted`` once it starts (never, if it is
abandoned while it waits), a ``Piece`` per generated token, and ``Done`` last.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from deepwell.vocabulary import Sampling, TokenLogprob

EngineFinish = Literal["stop", "length", "insufficient_system_resource"]


@dataclass(frozen=True, slots=True)
class Constraint:
    """What the generated text must match, in a form any engine can enforce.

    ``json_schema``: ``source`` is a JSON Schema, as JSON text; the text is one JSON value
    valid against it. ``lark``: ``source`` is a grammar in llguidance's Lark dialect (start
    rule ``start``), which may embed JSON Schemas (``%json {...}``) and name the model's
    special tokens (``<tool_call>``). vLLM and SGLang take both with their llguidance
    backends; the embedded engine compiles them with llguidance itself.
    """

    kind: Literal["json_schema", "lark"]
    source: str


class ConstraintError(ValueError):
    """A constraint that cannot be enforced (invalid, too large, or unsatisfiable)."""


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """What the engine generates: ``prompt`` token ids, at most ``max_tokens`` new ones.

    Generation ends at an end-of-generation token, after ``max_tokens`` tokens, or when
    the text contains one of ``stop`` (the stop string itself is not returned).
    ``namespace`` separates cache entries of different accounts. ``constraint``, when
    given, masks every token that would take the text outside it. With ``logprobs`` set,
    each token's log-probability (under the model, before any mask) and that many most
    likely alternatives come back.
    """

    prompt: tuple[int, ...]
    max_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    namespace: str = ""
    constraint: Constraint | None = None
    logprobs: int | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """The engine began the generation. ``cached_tokens`` of its prompt were not read
    again because their KV was already there (resident, or restored from a saved state);
    the count is exact, not rounded to cache blocks (that is accounting, done above)."""

    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Piece:
    """Newly generated text, the logprobs of the tokens it came from when asked for, and
    how many generated ``tokens`` it accounts for.

    Every generated token comes with a piece as soon as it is sampled, so a generation
    cut at any point has reported exactly what it computed. The text may be empty while
    a multi-byte character or a possible stop string is incomplete; its tokens' logprobs
    then come with a later piece.
    """

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class Done:
    """The last event of every generation; ``cached_tokens`` as in ``Admitted``;
    ``stop_sequence``: the stop string that ended it, if one did."""

    reason: EngineFinish
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    stop_sequence: str | None = None


EngineEvent = Admitted | Piece | Done


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the core needs to know about the loaded model to render prompts."""

    name: str
    chat_template: str
    bos_token: str
    eos_token: str
    context_length: int


# "restarting": the engine is rebuilding itself after an internal failure and will be
# ready again; "failed": it could not, and serves nothing.
EngineState = Literal["ready", "restarting", "failed"]


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """An engine's state and load; ``restarts`` counts recoveries from internal failures."""

    state: EngineState
    sequences_busy: int
    sequences_total: int
    queue_length: int
    kv_used: int
    kv_total: int
    prefix_reused_tokens: int = 0
    cache: dict[str, dict[str, int]] = field(default_factory=dict)
    restarts: int = 0
    # Decode steps run, and the seconds spent in them, since the engine (re)started.
    decode_steps: int = 0
    decode_seconds: float = 0.0
    # Tokens guessed by speculation, and how many of them were taken.
    draft_tokens: int = 0
    draft_accepted: int = 0


class Engine(Protocol):
    """A running model.

    ``generate`` may be called concurrently from the event loop; closing the returned
    iterator early (``aclose``, cancellation, a client disconnect) aborts the
    generation and frees its resources.
    """

    @property
    def info(self) -> ModelInfo: ...

    def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]: ...

    def tokenize(self, text: str, *, special: bool) -> list[int]: ...

    def special_token(self, text: str) -> bool:
        """Whether ``text`` is one special token of the model (a constraint names it as
        ``<text>``; text never matches it)."""
        ...

    def check_constraint(self, constraint: Constraint) -> None:
        """Raise ``ConstraintError`` (saying why) if ``constraint`` cannot be enforced.

        CPU work, bounded by the engine's limits: call it off the event loop."""
        ...

    async def health(self) -> EngineHealth: ...

    async def close(self) -> None: ...
