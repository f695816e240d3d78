"""Reading a JSON request body into a wire model, whatever its content type, within the
server's request limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
from fastapi import Request
from pydantic import BaseModel, ValidationError

from deepwell.errors import InvalidRequest, PayloadTooLarge
from deepwell.http.errors import validation_error
from deepwell.http.state import services
from deepwell.settings import RequestLimits

M = TypeVar("M", bound=BaseModel)

_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'"[]{}')
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


async def parse(request: Request, model: type[M]) -> M:
    """The body as ``model``: bad JSON is a 400, JSON of the wrong shape a 422, a body
    over the server's limit a 413 (read no further than the limit), a body nested too
    deeply or with too many messages, content parts or tools a 400 naming the limit.

    Every check costs time linear in the body and comes before the route renders or
    tokenizes anything. Clients such as ``curl -d`` omit ``Content-Type``; the body is
    JSON all the same.
    """
    limits = services(request).limits
    raw = await _read(request, limits.max_body_bytes)
    if not raw.strip():
        raise InvalidRequest("Failed to parse the request body as JSON: the body is empty")
    if nests_deeper_than(raw, limits.max_json_depth):
        raise InvalidRequest(
            f"The request body nests JSON more than {limits.max_json_depth} levels deep "
            "(limits.max_json_depth)"
        )
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None
    check_shape(body, limits)
    return body


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is too large: at most {limit} bytes are accepted")


def nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the arrays and objects of the JSON text ``raw`` nest more than ``limit``
    levels deep (brackets inside strings do not count).

    Linear in ``raw``, in bytes operations: escaped backslashes, then escaped quotes,
    then everything but quotes and brackets are dropped, then what lies between quotes;
    the depth is the highest running sum of the brackets left.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    skeleton = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    if len(skeleton) <= 2 * limit:
        return False
    steps = np.frombuffer(skeleton.translate(_STEPS), dtype=np.int8)
    running = steps.cumsum(dtype=np.int32 if len(steps) < 1 << 31 else np.int64)
    return int(running.max()) > limit


def check_shape(body: BaseModel, limits: RequestLimits) -> None:
    """Refuse a body with more ``messages``, content parts in one message (or in a list
    ``system``) or ``tools`` than ``limits`` allow, whatever dialect's model it is.

    A part's own list ``content`` (Anthropic's ``tool_result``) counts towards its
    message's parts.
    """
    messages = _items(body, "messages")
    _at_most(len(messages), limits.max_messages, "messages", "max_messages")
    for index, message in enumerate(messages):
        parts = _parts(message)
        _at_most(parts, limits.max_content_parts, f"messages[{index}].content", "max_content_parts")
    system = getattr(body, "system", None)
    if isinstance(system, list):
        _at_most(len(system), limits.max_content_parts, "system", "max_content_parts")
    _at_most(len(_items(body, "tools")), limits.max_tools, "tools", "max_tools")


def _items(value: object, field: str) -> Sequence[Any]:
    found = getattr(value, field, None)
    return found if isinstance(found, list) else []


def _parts(message: object) -> int:
    parts = _items(message, "content")
    return len(parts) + sum(len(_items(part, "content")) for part in parts)


def _at_most(count: int, limit: int, param: str, setting: str) -> None:
    if count > limit:
        raise InvalidRequest(
            f"Too many items in {param}: {count} given, at most {limit} are accepted "
            f"(limits.{setting})",
            param=param,
        )
