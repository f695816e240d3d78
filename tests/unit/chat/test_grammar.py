"""Constraints for JSON output and tool calls, run through llguidance over a byte
vocabulary: what they let through and what they refuse."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import llguidance
import pytest

from deepwell.chat import grammar
from deepwell.chat.toolcalls import DEEPSEEK, HERMES, ToolCallFormat
from deepwell.engine.base import Constraint, ConstraintError
from deepwell.engine.constraints import LIMITS, Constraints, byte_tokenizer, llguidance_grammar
from deepwell.vocabulary import Tool

TOKENIZER = byte_tokenizer()
WEATHER = Tool(
    "get_weather",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
        "additionalProperties": False,
    },
)
TIME = Tool("get_time")


def accepts(constraint: Constraint, text: str) -> bool:
    """Whether ``text`` is a complete output the constraint allows."""
    matcher = llguidance.LLMatcher(TOKENIZER, llguidance_grammar(constraint), limits=LIMITS)
    assert not matcher.is_error(), matcher.get_error()
    tokens = list(text.encode())
    return matcher.try_consume_tokens(tokens) == len(tokens) and matcher.is_accepting()


def schemas(*tools: Tool) -> list[Mapping[str, Any]]:
    return [grammar.arguments_schema(tool) for tool in tools]


def hermes_call(name: str, arguments: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


def test_json_output_is_any_object() -> None:
    assert accepts(grammar.JSON_OBJECT, '{"a": [1, 2], "b": {"c": null}}')
    assert accepts(grammar.JSON_OBJECT, "{}")
    assert not accepts(grammar.JSON_OBJECT, "[1]")
    assert not accepts(grammar.JSON_OBJECT, '{"a": 1')
    assert not accepts(grammar.JSON_OBJECT, 'Sure: {"a": 1}')


def test_json_is_written_with_single_spaces() -> None:
    assert accepts(grammar.JSON_OBJECT, '{"a": 1, "b": 2}')
    assert not accepts(grammar.JSON_OBJECT, '{"a":1}')
    assert not accepts(grammar.JSON_OBJECT, '{\n  "a": 1\n}')


def test_a_response_schema_is_enforced_with_its_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 10},
            "step": {"type": "integer", "multipleOf": 5},
            "tag": {"enum": ["a", "b"]},
            "when": {"type": "string", "format": "date"},
        },
        "required": ["score", "step", "tag", "when"],
        "additionalProperties": False,
    }
    constraint = grammar.json_schema(schema)
    assert accepts(constraint, '{"score": 7.5, "step": 15, "tag": "b", "when": "2026-12-01"}')
    assert not accepts(constraint, '{"score": 11, "step": 15, "tag": "b", "when": "2026-12-01"}')
    assert not accepts(constraint, '{"score": 1, "step": 7, "tag": "b", "when": "2026-12-01"}')
    assert not accepts(constraint, '{"score": 1, "step": 5, "tag": "c", "when": "2026-12-01"}')
    assert not accepts(constraint, '{"score": 1, "step": 5, "tag": "a", "when": "yesterday"}')
    assert not accepts(constraint, '{"score": 1, "step": 5, "tag": "a"}')


def test_refs_and_any_of() -> None:
    schema = {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        "anyOf": [{"$ref": "#/$defs/point"}, {"type": "string", "pattern": "^ab+$"}],
    }
    constraint = grammar.json_schema(schema)
    assert accepts(constraint, '{"x": 3}')
    assert accepts(constraint, '"abbb"')
    assert not accepts(constraint, '"ba"')


def test_forced_hermes_calls() -> None:
    constraint = grammar.tool_calls((WEATHER, TIME), schemas(WEATHER, TIME), HERMES)
    one = hermes_call("get_weather", '{"city": "Paris"}')
    two = one + "\n" + hermes_call("get_time", "{}")
    assert accepts(constraint, one)
    assert accepts(constraint, two)
    assert not accepts(constraint, hermes_call("get_weather", '{"town": "Paris"}'))
    assert not accepts(constraint, hermes_call("get_weather", '{"city": "Paris", "days": 0}'))
    assert not accepts(constraint, hermes_call("get_time", '{"a": 1}'))
    assert not accepts(constraint, hermes_call("other", "{}"))
    assert not accepts(constraint, "Here: " + one)
    assert not accepts(constraint, "")


def test_one_call_when_parallel_calls_are_off() -> None:
    constraint = grammar.tool_calls((TIME,), schemas(TIME), HERMES, parallel=False)
    call = hermes_call("get_time", "{}")
    assert accepts(constraint, call)
    assert not accepts(constraint, call + "\n" + call)


def test_deepseek_calls_sit_inside_the_group_markers() -> None:
    constraint = grammar.tool_calls((TIME,), schemas(TIME), DEEPSEEK)
    call = f"{DEEPSEEK.open}{DEEPSEEK.call_head('get_time')}{{}}{DEEPSEEK.close}"
    assert accepts(constraint, f"{DEEPSEEK.group_open}{call}{DEEPSEEK.group_close}")
    assert not accepts(constraint, call)


def test_special_markers_are_token_references() -> None:
    constraint = grammar.tool_calls(
        (TIME,), schemas(TIME), HERMES, specials=frozenset({"<tool_call>", "</tool_call>"})
    )
    assert "call_0: <tool_call> rest_0" in constraint.source
    assert '"}\\n" </tool_call>' in constraint.source
    # A byte vocabulary has no such token: the grammar asks for one.
    with pytest.raises(ConstraintError, match="special token"):
        Constraints(byte_tokenizer()).check(constraint)


@pytest.mark.parametrize("fmt", [HERMES, DEEPSEEK])
def test_strict_auto_allows_text_or_schema_valid_calls(fmt: ToolCallFormat) -> None:
    constraint = grammar.text_or_tool_calls((WEATHER,), schemas(WEATHER), fmt)
    Constraints(byte_tokenizer()).check(constraint)
    assert accepts(constraint, "It is sunny < there.")
    assert accepts(constraint, "")


def test_strict_auto_with_a_plain_marker_constrains_the_call_once_it_begins() -> None:
    constraint = grammar.text_or_tool_calls((WEATHER,), schemas(WEATHER), HERMES)
    good = hermes_call("get_weather", '{"city": "Oslo"}')
    assert accepts(constraint, "Let me look. " + good)
    assert accepts(constraint, good)
    assert not accepts(constraint, "Let me look. " + hermes_call("get_weather", '{"x": 1}'))
    assert not accepts(constraint, "<tool_call>\nnot json\n</tool_call>")


def test_strict_auto_with_a_special_marker_keeps_bare_calls_valid() -> None:
    specials = frozenset({"<tool_call>", "</tool_call>"})
    constraint = grammar.text_or_tool_calls((WEATHER,), schemas(WEATHER), HERMES, specials=specials)
    assert "bare_calls" in constraint.source
    assert "PLAIN: " in constraint.source


def test_the_grammar_is_lark_with_embedded_schemas() -> None:
    constraint = grammar.tool_calls((WEATHER,), schemas(WEATHER), HERMES)
    assert constraint.kind == "lark"
    line = next(rule for rule in constraint.source.splitlines() if rule.startswith("args_0:"))
    embedded = json.loads(line.removeprefix("args_0: %json "))
    assert embedded["required"] == ["city"]
    assert embedded["x-guidance"] == grammar.JSON_STYLE


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": ")"}, "regex"),
        ({"type": "string", "pattern": "["}, "regex"),
        ({"enum": []}, "Unsatisfiable"),
        ({"anyOf": []}, "Unsatisfiable"),
        ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "allows no output"),
        (
            {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(20000)}},
            "large",
        ),
    ],
)
def test_hostile_schemas_are_refused_with_a_reason(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ConstraintError, match=message):
        Constraints(byte_tokenizer()).check(grammar.json_schema(schema))


@pytest.mark.parametrize(
    "pattern", ["]", "a{0,100000}", "(a?){300}", "a{100000000}", "\\x00", "((a*)*)*b"]
)
def test_hostile_patterns_compile_within_bounds(pattern: str) -> None:
    constraint = grammar.json_schema({"type": "string", "pattern": pattern})
    Constraints(byte_tokenizer()).check(constraint)


def test_objects_that_list_their_properties_take_only_those() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}},
    }
    constraint = grammar.json_schema(schema)
    assert accepts(constraint, '{"a": {"b": 1}}')
    assert not accepts(constraint, '{"a": {"b": 1}, "c": 2}')
    assert not accepts(constraint, '{"a": {"b": 1, "c": 2}}')
    opened = grammar.json_schema({**schema, "additionalProperties": True})
    assert accepts(opened, '{"a": {"b": 1}, "c": 2}')


def test_no_parameters_is_an_empty_object_schema() -> None:
    assert grammar.no_parameters() == {"type": "object", "properties": {}}
    assert grammar.no_parameters(closed=True) == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    first = grammar.no_parameters()
    first["properties"]["x"] = {"type": "string"}
    assert grammar.no_parameters() == {"type": "object", "properties": {}}


def test_a_function_without_parameters_takes_only_an_empty_object() -> None:
    assert grammar.arguments_schema(TIME) == grammar.no_parameters(closed=True)
    assert grammar.arguments_schema(WEATHER) is WEATHER.parameters


@pytest.mark.parametrize("fmt", [HERMES, DEEPSEEK])
def test_text_only_makes_no_call(fmt: ToolCallFormat) -> None:
    constraint = grammar.text_only(fmt, names=["get_weather"])
    assert accepts(constraint, "It is sunny in Paris.")
    assert accepts(constraint, "")
    assert accepts(constraint, 'Use {"name": "Ada"} as the body.')
    for marker in (fmt.group_open, fmt.open):
        if marker:
            assert not accepts(constraint, f'Let me check. {marker}{{"city": "Paris"}}')


def test_text_only_makes_no_bare_call_either() -> None:
    constraint = grammar.text_only(HERMES, names=["get_weather", "get_time"])
    for call in ('{"name": "get_weather", "arguments": {}}', '{ "name" :"get_time"'):
        assert not accepts(constraint, f"Sure.\n{call}")
    assert accepts(grammar.text_only(HERMES), '{"name": "get_weather", "arguments": {}}')


def test_text_only_leaves_special_markers_to_the_vocabulary() -> None:
    specials = frozenset({"<tool_call>", "</tool_call>"})
    assert grammar.text_only(HERMES, specials).source == "start: TEXT?\nTEXT: /(?s:.+)/\n"
