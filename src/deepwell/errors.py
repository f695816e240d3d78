"""The typed errors of deepwell.

Every error a client can cause is one of these. They carry what the DeepSeek error
envelope needs (status, message, type, code, param) and are rendered in one place,
``deepwell.http.errors``; nothing below the HTTP layer builds a response body.
"""

from __future__ import annotations


class DeepwellError(Exception):
    """Base class: an error with an HTTP status and a DeepSeek error envelope."""

    status: int = 500
    type: str = "api_error"
    code: str | None = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def envelope(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(DeepwellError):
    """400: the request is well-formed JSON but not acceptable."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request_error"


class ModelNotFound(InvalidRequest):
    def __init__(self) -> None:
        super().__init__("Model Not Exist")


class InvalidParameters(DeepwellError):
    """422: a parameter has the wrong type or shape."""

    status = 422
    type = "invalid_request_error"
    code = "invalid_parameters"


class PayloadTooLarge(DeepwellError):
    """413: the request body is larger than the server accepts."""

    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class AuthenticationFailed(DeepwellError):
    status = 401
    type = "authentication_error"
    code = "invalid_request_error"

    @classmethod
    def for_key(cls, key: str | None) -> AuthenticationFailed:
        if not key:
            return cls("Authentication Fails (auth header format should be Bearer sk-...)")
        return cls(f"Authentication Fails, Your api key: ****{key[-4:]} is invalid")


class InsufficientBalance(DeepwellError):
    status = 402
    type = "unknown_error"
    code = "invalid_request_error"


class RateLimited(DeepwellError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class Overloaded(DeepwellError):
    status = 503
    type = "server_overloaded"
    code = "server_overloaded"


class EngineFailure(DeepwellError):
    """500: the engine failed for a reason the client did not cause."""

    status = 500
    type = "api_error"
    code = "internal_error"


class ConfigurationError(Exception):
    """deepwell was configured in a way it cannot run with (raised at startup)."""
