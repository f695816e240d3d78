"""DeepSeek's rules for ``tools`` and ``tool_choice``, and strict mode's schema subset.

Every check raises ``InvalidRequest`` naming what is wrong, before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from deepwell.chat.grammar import arguments_schema
from deepwell.errors import InvalidRequest
from deepwell.vocabulary import Tool, ToolChoice

MAX_TOOLS = 128
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# Strict mode: what each JSON type may say. Annotations are allowed everywhere.
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment"})
_ANY = frozenset({"type", "enum", "const", "anyOf", "$ref", "$def", "$defs"})
_BY_TYPE: dict[str, frozenset[str]] = {
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "string": frozenset({"pattern", "format"}),
    "number": frozenset(
        {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    ),
    "integer": frozenset(
        {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    ),
    "boolean": frozenset(),
    "array": frozenset({"items"}),
    "null": frozenset(),
}
STRICT_FORMATS = frozenset({"email", "hostname", "ipv4", "ipv6", "uuid"})


def check_tools(tools: Sequence[Tool], choice: ToolChoice | None, *, beta: bool) -> None:
    """The limits on ``tools``, a ``tool_choice`` that fits them, and on ``/beta``
    strict functions whose schemas stay inside the supported subset."""
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(
            f"Invalid tools: at most {MAX_TOOLS} functions are allowed, got {len(tools)}",
            param="tools",
        )
    for index, tool in enumerate(tools):
        if not _NAME.match(tool.name):
            raise InvalidRequest(
                f"Invalid tools[{index}].function.name: `{tool.name}` must match "
                "^[a-zA-Z0-9_-]{1,64}$",
                param=f"tools[{index}].function.name",
            )
    _check_choice(tools, choice)
    if beta and any(tool.strict for tool in tools):
        _check_strict(tools)


def strict_mode(tools: Sequence[Tool], *, beta: bool) -> bool:
    """Strict mode is on for ``/beta`` requests whose functions all say ``strict``."""
    return beta and bool(tools) and all(tool.strict for tool in tools)


def _check_choice(tools: Sequence[Tool], choice: ToolChoice | None) -> None:
    if choice is None or choice.mode in ("none", "auto"):
        return
    if not tools:
        raise InvalidRequest(
            f"tool_choice `{_describe(choice)}` needs `tools`", param="tool_choice"
        )
    if choice.mode == "function" and choice.name not in {tool.name for tool in tools}:
        raise InvalidRequest(
            f"tool_choice names the function `{choice.name}`, which is not in `tools`",
            param="tool_choice",
        )


def _describe(choice: ToolChoice) -> str:
    return choice.mode if choice.mode != "function" else f"function {choice.name}"


def _check_strict(tools: Sequence[Tool]) -> None:
    for index, tool in enumerate(tools):
        param = f"tools[{index}].function"
        if not tool.strict:
            raise InvalidRequest(
                f"Invalid {param}: in strict mode every function must set `strict: true`",
                param=f"{param}.strict",
            )
        schema = arguments_schema(tool)
        if schema.get("type") != "object":
            raise InvalidRequest(
                f"Invalid schema for function `{tool.name}`: `parameters` must be an object "
                'schema (`"type": "object"`)',
                param=f"{param}.parameters",
            )
        for where, problem in _schema_problems(schema, "parameters"):
            raise InvalidRequest(
                f"Invalid schema for function `{tool.name}` at {where}: {problem}",
                param=f"{param}.parameters",
            )


def _schema_problems(schema: Any, where: str) -> Iterator[tuple[str, str]]:
    """What takes ``schema`` outside strict mode's subset, as (location, problem)."""
    if not isinstance(schema, Mapping):
        yield where, "a schema must be an object"
        return
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind not in _BY_TYPE):
        yield where, f"the type {kind!r} is not supported in strict mode"
        return
    allowed = _ANNOTATIONS | _ANY | _BY_TYPE.get(kind or "", frozenset())
    for keyword in schema:
        if keyword not in allowed:
            yield where, f"the keyword `{keyword}` is not supported in strict mode"
    if "enum" in schema and not isinstance(schema["enum"], list):
        yield where, "`enum` must be a list"
    if kind == "object":
        yield from _object_problems(schema, where)
    if kind == "string" and schema.get("format") not in (None, *STRICT_FORMATS):
        yield where, f"the string format `{schema['format']}` is not supported in strict mode"
    ref = schema.get("$ref")
    if ref is not None and not _local_ref(ref):
        yield where, f"`$ref` must point into `$def` (as #/$def/name), not {ref!r}"
    yield from _children_problems(schema, where)


def _object_problems(schema: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(properties, Mapping):
        yield where, "`properties` must be an object"
        return
    if not isinstance(required, list):
        yield where, "`required` must be a list of property names"
        return
    missing = [str(name) for name in properties if name not in required]
    if missing:
        yield (
            where,
            (
                "in strict mode every property must be listed in `required` "
                f"(missing: {', '.join(missing)})"
            ),
        )
    if schema.get("additionalProperties") is not False:
        yield where, "in strict mode an object must set `additionalProperties: false`"


def _children_problems(schema: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    for key in ("properties", "$def", "$defs"):
        children = schema.get(key, {})
        if not isinstance(children, Mapping):
            yield where, f"`{key}` must be an object"
            continue
        for name, sub in children.items():
            yield from _schema_problems(sub, f"{where}.{key}.{name}")
    if "items" in schema:
        yield from _schema_problems(schema["items"], f"{where}.items")
    alternatives = schema.get("anyOf", [])
    if not isinstance(alternatives, list):
        yield where, "`anyOf` must be a list of schemas"
        return
    for i, sub in enumerate(alternatives):
        yield from _schema_problems(sub, f"{where}.anyOf[{i}]")


def _local_ref(ref: object) -> bool:
    return isinstance(ref, str) and (ref.startswith(("#/$def/", "#/$defs/")) or ref == "#")
