"""What the chat and FIM completions wire formats share: the request fields both take,
and the envelope, usage and stream-chunk shape of what they send back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deepwell.core.events import Started, Usage
from deepwell.vocabulary import Sampling

Json = dict[str, Any]


class Wire(BaseModel):
    """A request object on the wire: unknown fields are ignored, as DeepSeek does."""

    model_config = ConfigDict(extra="ignore")


class Thinking(Wire):
    """``budget_tokens`` (a deepwell extension, as on the Anthropic endpoint) caps the
    reasoning in tokens instead of the effort's budget."""

    type: Literal["enabled", "disabled"]
    budget_tokens: Annotated[int, Field(ge=0)] | None = None


class StreamOptions(Wire):
    include_usage: bool = False


class GenerationFields(Wire):
    """The fields chat and FIM completion requests share, and what they mean to the core."""

    model: str
    thinking: Thinking | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    # Deprecated by DeepSeek: accepted, and without effect.
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    seed: int | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def sampling(self) -> Sampling:
        return Sampling(
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
        )

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def thinking_enabled(self) -> bool | None:
        return None if self.thinking is None else self.thinking.type == "enabled"


# -- core → wire ---------------------------------------------------------------------


def usage(u: Usage) -> Json:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_hit_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "prompt_cache_hit_tokens": u.cache_hit_tokens,
        "prompt_cache_miss_tokens": u.cache_miss_tokens,
    }


def response(started: Started, kind: str, choice: Json, used: Usage) -> Json:
    """A whole response object (``kind``) of one choice."""
    return {**envelope(started, kind), "choices": [choice], "usage": usage(used)}


def chunk(
    started: Started, kind: str, choice: Json, *, used: Usage | None, include_usage: bool
) -> Json:
    """A stream chunk (``kind``) of one choice. Usage rides on the chunk that carries
    ``finish_reason``; with ``include_usage`` every other chunk has ``"usage": null``,
    without it the key is absent there, as the hosted API does."""
    out: Json = {**envelope(started, kind), "choices": [choice]}
    if used is not None:
        out["usage"] = usage(used)
    elif include_usage:
        out["usage"] = None
    return out


def envelope(started: Started, kind: str) -> Json:
    return {
        "id": started.id,
        "object": kind,
        "created": started.created,
        "model": started.model,
        "system_fingerprint": started.fingerprint,
    }
