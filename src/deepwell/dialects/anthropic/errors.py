"""Errors in Anthropic's envelope: ``{"type": "error", "error": {"type", "message"}}``,
with Anthropic's error types and DeepSeek's statuses (a 402 is Anthropic's
``billing_error``, a full queue DeepSeek's 503 as ``overloaded_error``)."""

from __future__ import annotations

from typing import Any

from deepwell.core.thinking import ReasoningNotPassedBack
from deepwell.errors import DeepwellError

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}
PASSBACK_MESSAGE = "The `content[].thinking` in the thinking mode must be passed back to the API."
"""DeepSeek's words on its Anthropic endpoint for a tool-use turn sent back without its
``thinking`` block."""


def error_body(error: DeepwellError) -> dict[str, Any]:
    kind = TYPES.get(error.status, "api_error")
    message = PASSBACK_MESSAGE if isinstance(error, ReasoningNotPassedBack) else error.message
    return {"type": "error", "error": {"type": kind, "message": message}}
