"""The checks and figures chat and FIM completion share."""

from __future__ import annotations

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
