"""Grammars for JSON output and tool calls: they parse in llama.cpp and say what they should."""

from __future__ import annotations

import re
from typing import Any

import pytest

from deepwell.chat import grammar
from deepwell.chat.grammar import (
    FORMAT_PATTERNS,
    JSON_OBJECT,
    SchemaError,
    check,
    schema_grammar,
    text_or_tool_calls_grammar,
    tool_calls_grammar,
)
from deepwell.chat.toolcalls import DEEPSEEK, HERMES, ToolCallFormat
from deepwell.core.types import Tool

WEATHER = Tool(
    "get_weather",
    "Weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)
# Two tools with a definition of the same name but different meaning.
REF_A = Tool(
    "a",
    parameters={
        "type": "object",
        "properties": {"x": {"$ref": "#/$def/item"}},
        "required": ["x"],
        "additionalProperties": False,
        "$def": {"item": {"type": "integer"}},
    },
)
REF_B = Tool(
    "b",
    parameters={
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/item"}},
        "required": ["x"],
        "additionalProperties": False,
        "$defs": {"item": {"type": "boolean"}},
    },
)
NO_ARGS = Tool("ping")


def rules(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, body = line.partition(" ::= ")
        if sep:
            assert name not in out, f"rule {name} defined twice"
            out[name] = body
    return out


def test_json_object_grammar_parses() -> None:
    assert check(JSON_OBJECT) == JSON_OBJECT
    assert re.search(r"^root\s+::= object$", JSON_OBJECT, re.MULTILINE)


@pytest.mark.parametrize("fmt", [HERMES, DEEPSEEK])
def test_forced_calls_grammar(fmt: ToolCallFormat) -> None:
    text = check(tool_calls_grammar([WEATHER, REF_A, REF_B, NO_ARGS], fmt, strict_schemas=True))
    found = rules(text)
    assert found["root"] == "calls"
    for name in ("get_weather", "a", "b", "ping"):
        assert f'\\"name\\": \\"{name}\\"' in found["call"] or f"{name}<" in found["call"]
    # Each tool's definitions are its own, even under the same name.
    assert found["tool1-arguments-x"] == "integer"
    assert found["tool2-arguments-x"] == "boolean"


def test_object_definitions_of_the_same_name_stay_apart() -> None:
    def tool(name: str, kind: str) -> Tool:
        item = {"type": "object", "properties": {"y": {"type": kind}}, "required": ["y"]}
        schema = {
            "type": "object",
            "properties": {"x": {"$ref": "#/$def/item"}},
            "required": ["x"],
            "$def": {"item": item},
        }
        return Tool(name, parameters=schema)

    found = rules(
        check(
            tool_calls_grammar(
                [tool("a", "integer"), tool("b", "boolean")], HERMES, strict_schemas=True
            )
        )
    )
    assert found["tool0-arguments-item-y-kv"].endswith("integer")
    assert found["tool1-arguments-item-y-kv"].endswith("boolean")


def test_hermes_calls_are_written_as_qwen_writes_them() -> None:
    found = rules(tool_calls_grammar([NO_ARGS], HERMES, strict_schemas=False))
    assert found["calls"] == 'call ("\\n" call)*'
    assert found["call"].startswith('( "<tool_call>\\n{\\"name\\": \\"ping\\", \\"arguments\\": "')
    assert found["call"].endswith('"}\\n</tool_call>" )')


def test_deepseek_calls_sit_inside_the_group_markers() -> None:
    found = rules(tool_calls_grammar([NO_ARGS], DEEPSEEK, strict_schemas=False))
    assert found["calls"].startswith('"<\uff5ctool\u2581calls\u2581begin\uff5c>" call')
    assert found["calls"].endswith('"<\uff5ctool\u2581calls\u2581end\uff5c>"')


def test_enum_and_required_properties_are_in_the_rules() -> None:
    found = rules(tool_calls_grammar([WEATHER], HERMES, strict_schemas=True))
    assert found["tool0-arguments-unit"] == '"\\"celsius\\"" | "\\"fahrenheit\\""'
    assert found["tool0-arguments"].startswith('"{" space tool0-arguments-city-kv')


UNCONVERTIBLE: dict[str, Any] = {
    "type": "object",
    "properties": {"x": {"type": "string", "pattern": "(?=x)x"}},
}


def test_a_schema_the_converter_refuses_is_any_object_unless_strict() -> None:
    loose = check(
        tool_calls_grammar([Tool("f", parameters=UNCONVERTIBLE)], HERMES, strict_schemas=False)
    )
    assert "object" in rules(loose)
    with pytest.raises(SchemaError):
        tool_calls_grammar([Tool("f", parameters=UNCONVERTIBLE)], HERMES, strict_schemas=True)


@pytest.mark.parametrize("fmt", [HERMES, DEEPSEEK])
def test_text_or_calls_grammar_parses(fmt: ToolCallFormat) -> None:
    found = rules(check(text_or_tool_calls_grammar([WEATHER, NO_ARGS], fmt)))
    assert "calls" in found
    assert ("bare-calls" in found) is fmt.bare


def test_free_text_states_follow_the_marker() -> None:
    found = rules(text_or_tool_calls_grammar([NO_ARGS], HERMES))
    marker = "<tool_call>"
    assert found["root"] == "bare-calls | plain (calls)?"
    assert '"```" [a-z]* "\\n" bare-list "\\n```"' in found["bare-calls"]
    assert found["plain"] == '| "<" text-1 | [^\\t\\n\\r <`{] text-0'
    assert found["text-0"] == '| "<" text-1 | [^<] text-0'
    for k in range(1, len(marker) - 1):
        assert f'"{marker[k]}" text-{k + 1}' in found[f"text-{k}"]
    # The marker's last character is never allowed after the rest of it.
    last = found[f"text-{len(marker) - 1}"]
    assert '">"' not in last
    assert "[^<>]" in last


@pytest.mark.parametrize("fmt", sorted(FORMAT_PATTERNS))
def test_string_formats_become_patterns_that_parse(fmt: str) -> None:
    check(schema_grammar({"type": "string", "format": fmt}))


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ("someone@example.com", "email"),
        ("a.b-c@mail.example.org", "email"),
        ("example.com", "hostname"),
        ("localhost", "hostname"),
        ("192.168.0.1", "ipv4"),
        ("255.255.255.255", "ipv4"),
        ("2001:db8:0:0:0:0:2:1", "ipv6"),
    ],
)
def test_format_patterns_accept_valid_values(value: str, fmt: str) -> None:
    assert re.fullmatch(FORMAT_PATTERNS[fmt].strip("^$"), value)


@pytest.mark.parametrize(
    ("value", "fmt"), [("no-at-sign", "email"), ("256.1.1.1", "ipv4"), ("-bad.com", "hostname")]
)
def test_format_patterns_refuse_invalid_values(value: str, fmt: str) -> None:
    assert not re.fullmatch(FORMAT_PATTERNS[fmt].strip("^$"), value)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"^\d{3}$", "^[0-9]{3}$"),
        (r"[\w.]+", "^[a-zA-Z0-9_.]+$"),
        (r"a\.b\-c", "^a[\\x2E]b[\\x2D]c$"),
        (r"[\d\-]+", "^[0-9\\x2D]+$"),
        (r"\s*x", "^[ \\t\\n\\r]*x$"),
    ],
)
def test_patterns_are_anchored_and_escapes_rewritten(pattern: str, expected: str) -> None:
    assert grammar._with_patterns({"pattern": pattern})["pattern"] == expected
    check(schema_grammar({"type": "string", "pattern": pattern}))


def test_an_unsupported_escape_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"\\b"):
        schema_grammar({"type": "string", "pattern": r"\bword"})


def test_check_refuses_a_broken_grammar() -> None:
    with pytest.raises(SchemaError):
        check("root ::= undefined-rule")
