"""Validation of tools and tool_choice, and strict mode's schema subset."""

from __future__ import annotations

from typing import Any

import pytest

from deepwell.chat.grammar import no_parameters
from deepwell.core.tools import MAX_TOOLS, check_tools, strict_mode
from deepwell.errors import InvalidRequest
from deepwell.vocabulary import Tool, ToolChoice


def strict(parameters: dict[str, Any], name: str = "f") -> Tool:
    return Tool(name, parameters=parameters, strict=True)


def obj(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def test_up_to_128_tools() -> None:
    check_tools([Tool(f"t{i}") for i in range(MAX_TOOLS)], None, beta=False)
    with pytest.raises(InvalidRequest, match="at most 128 functions") as caught:
        check_tools([Tool(f"t{i}") for i in range(MAX_TOOLS + 1)], None, beta=False)
    assert caught.value.param == "tools"


@pytest.mark.parametrize("name", ["get_weather", "a", "A-b_9", "x" * 64])
def test_valid_names(name: str) -> None:
    check_tools([Tool(name)], None, beta=False)


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "dots.not.allowed", "ünï"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidRequest, match="must match") as caught:
        check_tools([Tool("ok"), Tool(name)], None, beta=False)
    assert caught.value.param == "tools[1].function.name"


def test_tool_choice_needs_tools_and_a_known_name() -> None:
    check_tools([], ToolChoice("none"), beta=False)
    check_tools([], ToolChoice("auto"), beta=False)
    with pytest.raises(InvalidRequest, match="needs `tools`"):
        check_tools([], ToolChoice("required"), beta=False)
    with pytest.raises(InvalidRequest, match="`nope`, which is not in `tools`") as caught:
        check_tools([Tool("f")], ToolChoice("function", "nope"), beta=False)
    assert caught.value.param == "tool_choice"
    check_tools([Tool("f")], ToolChoice("function", "f"), beta=False)


def test_strict_mode_only_on_beta_and_when_every_function_is_strict() -> None:
    assert strict_mode([strict(obj())], beta=True)
    assert not strict_mode([strict(obj())], beta=False)
    assert not strict_mode([], beta=True)
    assert not strict_mode([strict(obj()), Tool("g")], beta=True)


def test_strict_outside_beta_is_not_checked() -> None:
    check_tools([strict({"type": "object", "minProperties": 1})], None, beta=False)


def test_on_beta_a_strict_function_needs_every_other_strict_too() -> None:
    with pytest.raises(InvalidRequest, match="every function must set `strict: true`") as caught:
        check_tools([strict(obj()), Tool("g")], None, beta=True)
    assert caught.value.param == "tools[1].function.strict"


SUPPORTED = obj(
    city={"type": "string", "pattern": "^[A-Z][a-z]+$", "description": "a city"},
    email={"type": "string", "format": "email"},
    days={"type": "integer", "minimum": 1, "maximum": 7},
    ratio={"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
    unit={"enum": ["c", "f"]},
    tags={"type": "array", "items": {"type": "string"}},
    flag={"type": "boolean"},
    either={"anyOf": [{"type": "string"}, {"type": "null"}]},
    nested={"$ref": "#/$def/point"},
)
SUPPORTED["$def"] = {"point": obj(x={"type": "number"}, y={"type": "number"})}


def test_the_supported_subset_passes() -> None:
    check_tools([strict(SUPPORTED)], None, beta=True)


@pytest.mark.parametrize(
    ("schema", "keyword", "where"),
    [
        (obj(a={"type": "string", "minLength": 1}), "`minLength`", "parameters.properties.a"),
        (obj(a={"type": "string", "maxLength": 9}), "`maxLength`", "parameters.properties.a"),
        (
            obj(a={"type": "array", "items": {"type": "string"}, "minItems": 1}),
            "`minItems`",
            "parameters.properties.a",
        ),
        (obj(a={"type": "array", "maxItems": 2}), "`maxItems`", "parameters.properties.a"),
        (obj(a={"oneOf": [{"type": "string"}]}), "`oneOf`", "parameters.properties.a"),
        (obj(a={"type": "string", "format": "date"}), "`date`", "parameters.properties.a"),
        ({**obj(a={"type": "string"}), "required": []}, "`required`", "parameters"),
        (
            {**obj(a={"type": "string"}), "additionalProperties": True},
            "additionalProperties",
            "parameters",
        ),
        (obj(a={"type": ["string", "null"]}), "type", "parameters.properties.a"),
        (obj(a={"$ref": "https://example.com/s.json"}), "`$ref`", "parameters.properties.a"),
        (
            obj(a={"type": "array", "items": {"type": "integer", "uniqueItems": True}}),
            "`uniqueItems`",
            "parameters.properties.a.items",
        ),
    ],
)
def test_outside_the_subset_is_a_400_naming_the_keyword(
    schema: dict[str, Any], keyword: str, where: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_tools([strict(obj()), strict(schema, name="weather")], None, beta=True)
    message = caught.value.message
    assert keyword in message
    assert f"function `weather` at {where}:" in message
    assert caught.value.param == "tools[1].function.parameters"


ODD_SCHEMAS: list[Any] = [
    {"type": "object", "properties": [1, 2]},
    {"type": "object", "properties": {}, "required": 3, "additionalProperties": False},
    {"type": "object", "properties": {"a": 5}, "required": ["a"], "additionalProperties": False},
    {**obj(), "anyOf": 7},
    {**obj(), "$def": [1]},
    {**obj(), "items": "x"},
    {"type": {"nested": True}},
    {"enum": "abc"},
]


@pytest.mark.parametrize("schema", ODD_SCHEMAS)
def test_odd_strict_schemas_are_400s_never_crashes(schema: Any) -> None:
    with pytest.raises(InvalidRequest):
        check_tools([strict(schema)], None, beta=True)


def test_a_strict_function_without_parameters_passes() -> None:
    check_tools([Tool("f", strict=True)], None, beta=True)
    check_tools([strict(no_parameters(closed=True))], None, beta=True)
