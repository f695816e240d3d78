"""Errors in Anthropic's envelope: ``{"type": "error", "error": {"type", "message"}}``,
with Anthropic's error types and DeepSeek's statuses."""

from __future__ import annotations

from typing import Any

from deepwell.errors import DeepwellError

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "permission_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_body(error: DeepwellError) -> dict[str, Any]:
    kind = TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}
