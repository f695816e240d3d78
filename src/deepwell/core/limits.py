"""The checks and figures chat and FIM completion share."""

from __future__ import annotations

import hashlib
import time
import uuid

from deepwell import __version__
from deepwell.core.events import Started, Usage
from deepwell.engine.base import Done
from deepwell.errors import InvalidRequest

MAX_STOP_SEQUENCES = 16


def check_max_tokens(max_tokens: int | None, limit: int) -> None:
    if max_tokens is not None and not 1 <= max_tokens <= limit:
        raise InvalidRequest(
            f"Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]",
            param="max_tokens",
        )


def check_stop(stop: tuple[str, ...]) -> None:
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(
            f"Invalid stop value, at most {MAX_STOP_SEQUENCES} stop sequences are allowed",
            param="stop",
        )


def fit_context(prompt: int, max_tokens: int | None, max_output: int, context: int) -> int:
    """The completion budget; a prompt that leaves no room is the context-length 400."""
    completion = max_tokens if max_tokens is not None else min(max_output, context - prompt)
    requested = prompt + max(completion, 1)
    if requested > context:
        raise InvalidRequest(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{requested} tokens ({prompt} in the messages, {max(completion, 1)} in the "
            "completion). Please reduce the length of the messages or completion.",
        )
    return completion


def fingerprint(backing: str) -> str:
    digest = hashlib.sha256(f"{backing}/{__version__}".encode()).hexdigest()
    return f"fp_{digest[:10]}"


def usage(done: Done) -> Usage:
    return Usage(
        prompt_tokens=done.prompt_tokens,
        completion_tokens=done.completion_tokens,
        cache_hit_tokens=done.cached_tokens,
    )


def started(model_id: str, backing: str, *, thinking: bool, logprobs: bool = False) -> Started:
    """The first event of a generation: a fresh id, the time, the public id to echo."""
    return Started(
        id=str(uuid.uuid4()),
        model=model_id,
        created=int(time.time()),
        thinking=thinking,
        fingerprint=fingerprint(backing),
        logprobs=logprobs,
    )
