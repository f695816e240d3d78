"""GBNF grammars for constrained decoding: JSON output and tool calls.

JSON Schemas become grammar rules through llama.cpp's own converter (shipped with
llama-cpp-python); this module only assembles them into one grammar per request,
with root rule ``root``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import llama_cpp
from llama_cpp import llama_grammar

from deepwell.chat.toolcalls import ToolCallFormat
from deepwell.core.types import Tool

# Any JSON object (llama.cpp's json.gbnf): what JSON output mode allows.
JSON_OBJECT: str = llama_grammar.JSON_GBNF
# The converter's methods are untyped: it is used as a dynamic base class.
_SchemaConverter: Any = llama_grammar.SchemaConverter

# Regular expressions for the string formats strict mode allows that llama.cpp's
# converter does not know. Each accepts a subset of the format, so what the grammar
# lets through is always valid.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_LABEL = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
FORMAT_PATTERNS = {
    "email": r"^[a-zA-Z0-9_%+-]+([.][a-zA-Z0-9_%+-]+)*@[a-zA-Z0-9-]+([.][a-zA-Z0-9-]+)*"
    r"[.][a-zA-Z]{2,6}$",
    "hostname": rf"^{_LABEL}([.]{_LABEL})*$",
    "ipv4": rf"^({_OCTET}[.]){{3}}{_OCTET}$",
    "ipv6": r"^([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$",
}
# Regex escapes llama.cpp's converter copies into grammar literals as they are, where
# GBNF does not know them: spelled as character classes (inside one, as its members).
_CLASS_ESCAPES = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " \\t\\n\\r"}


class SchemaError(ValueError):
    """A JSON Schema the grammar converter cannot turn into rules."""


class _Converter(_SchemaConverter):  # type: ignore[misc]
    """llama.cpp's converter, with the rules of ``$ref`` targets named per tool, so
    that definitions of the same name in two tools stay apart."""

    def __init__(self) -> None:
        super().__init__(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        self.ref_prefix = ""

    def _resolve_ref(self, ref: str) -> str:
        name = self.ref_prefix + ref.split("/")[-1]
        if name not in self._rules and ref not in self._refs_being_resolved:
            self._refs_being_resolved.add(ref)
            name = self.visit(self._refs[ref], name)
            self._refs_being_resolved.remove(ref)
        return str(name)

    def add(self, schema: Mapping[str, Any], name: str) -> str:
        """Rules for ``schema``; returns the name of its rule."""
        self.ref_prefix = f"{name}-"
        try:
            resolved = self.resolve_refs(_with_patterns(copy.deepcopy(dict(schema))), name)
            return str(self.visit(resolved, name))
        except Exception as exc:  # the converter's own checks are assertions and lookups
            raise SchemaError(str(exc) or type(exc).__name__) from exc

    def rules(self) -> str:
        return str(self.format_grammar())


def _with_patterns(schema: Any) -> Any:
    """``schema`` with strict mode's string formats spelled as patterns, and patterns
    anchored (a full match also satisfies the unanchored search JSON Schema means)."""
    if isinstance(schema, list):
        return [_with_patterns(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _with_patterns(value) for key, value in schema.items()}
    fmt = out.get("format")
    if isinstance(fmt, str) and fmt in FORMAT_PATTERNS and "pattern" not in out:
        out["pattern"] = FORMAT_PATTERNS[fmt]
    pattern = out.get("pattern")
    if isinstance(pattern, str):
        anchored = ("" if pattern.startswith("^") else "^") + pattern
        out["pattern"] = _gbnf_escapes(anchored + ("" if pattern.endswith("$") else "$"))
    return out


def _gbnf_escapes(pattern: str) -> str:
    """``pattern`` with its backslash escapes written in ways the converter keeps valid."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(_escape(pattern[i + 1], in_class=in_class))
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


def _escape(char: str, *, in_class: bool) -> str:
    if char in _CLASS_ESCAPES:
        members = _CLASS_ESCAPES[char]
    elif char in "nrt":
        members = "\\" + char
    elif char.isalnum():
        raise SchemaError(f"the pattern escape \\{char} is not supported")
    else:
        members = f"\\u{ord(char):04X}" if ord(char) > 0xFF else f"\\x{ord(char):02X}"
    return members if in_class else f"[{members}]"


def check(grammar: str) -> str:
    """``grammar`` itself once llama.cpp has parsed it; a ``SchemaError`` if it does not."""
    sampler = llama_cpp.llama_sampler_init_grammar(None, grammar.encode(), b"root")
    if not sampler:
        raise SchemaError("the grammar built from the schema does not parse")
    llama_cpp.llama_sampler_free(sampler)
    return grammar


def schema_grammar(schema: Mapping[str, Any]) -> str:
    """A grammar whose root is a JSON value valid against ``schema``."""
    converter = _Converter()
    rule = converter.add(schema, "json")
    return f"root ::= {rule}\n{converter.rules()}"


_ANY_OBJECT = {"type": "object"}
_NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}


def _arguments_schema(tool: Tool) -> Mapping[str, Any]:
    if tool.parameters is None:
        return _NO_ARGUMENTS
    return tool.parameters


def tool_calls_grammar(tools: Sequence[Tool], fmt: ToolCallFormat, *, strict_schemas: bool) -> str:
    """A grammar for a reply made only of one or more calls to ``tools``.

    Arguments follow each tool's schema. A schema the converter cannot handle is a
    ``SchemaError`` when ``strict_schemas``; otherwise that tool's arguments may be
    any JSON object.
    """
    return "\n".join(["root ::= calls", *_calls_rules(tools, fmt, strict=strict_schemas)])


def text_or_tool_calls_grammar(tools: Sequence[Tool], fmt: ToolCallFormat) -> str:
    """Free text without the call marker, then optionally calls with schema-valid
    arguments: ``tool_choice: auto`` with strict tools.

    For formats that also take bare JSON calls, a reply that opens like one (with
    ``{``, a fence or blank space) must be schema-valid bare calls.
    """
    opener = fmt.group_open or fmt.open
    rules = [*_text_without(opener), *_calls_rules(tools, fmt, strict=True, bare=fmt.bare)]
    if not fmt.bare:
        return "\n".join(["root ::= text (calls)?", *rules])
    first = _char_class_except(set(opener[0] + "{`" + _BLANK))
    plain = f"plain ::= | {_literal(opener[0])} text-1 | {first} text-0"
    return "\n".join(["root ::= bare-calls | plain (calls)?", plain, *rules])


_BLANK = " \t\r\n"


def _calls_rules(
    tools: Sequence[Tool], fmt: ToolCallFormat, *, strict: bool, bare: bool = False
) -> list[str]:
    """Rules ``calls`` (and ``bare-calls``: JSON calls without markers) and theirs."""
    converter = _Converter()
    arguments = [_arguments_rule(converter, i, tool, strict) for i, tool in enumerate(tools)]
    calls = [fmt.call_rule(tool.name, rule) for tool, rule in zip(tools, arguments, strict=True)]
    separator = f"{_literal(fmt.separator)} " if fmt.separator else ""
    body = f"call ({separator}call)*"
    if fmt.group_open:
        body = f"{_literal(fmt.group_open)} {body} {_literal(fmt.group_close)}"
    rules = [f"calls ::= {body}", f"call ::= {_alternatives(calls)}"]
    if bare:
        objects = [_bare_rule(tool.name, rule) for tool, rule in zip(tools, arguments, strict=True)]
        rules += [
            # Bare calls in a row, in a Markdown fence or not, as the parser takes them.
            'bare-calls ::= [ \\t\\r\\n]* ( bare-list | "```" [a-z]* "\\n" bare-list "\\n```" )',
            'bare-list ::= bare-call ("\\n" bare-call)*',
            f"bare-call ::= {_alternatives(objects)}",
        ]
    return [*rules, converter.rules()]


def _alternatives(rules: list[str]) -> str:
    return " | ".join(f"( {rule} )" for rule in rules)


def _bare_rule(name: str, arguments: str) -> str:
    head = _literal(f'{{"name": "{name}", "arguments": ')
    return f"{head} {arguments} {_literal('}')}"


def _arguments_rule(converter: _Converter, index: int, tool: Tool, strict: bool) -> str:
    try:
        return converter.add(_arguments_schema(tool), f"tool{index}-arguments")
    except SchemaError:
        if strict:
            raise
        return converter.add(_ANY_OBJECT, f"tool{index}-arguments")


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _text_without(marker: str) -> list[str]:
    """Rules ``text``: any text in which ``marker`` does not occur.

    State ``text-k`` has just read the first ``k`` characters of the marker; the
    marker's first character starts it over, any other character returns to 0.
    (Exact for markers whose first character appears only at their start.)
    """
    first = marker[0]
    rules = []
    for k in range(len(marker)):
        here = f"text-{k}"
        alternatives = [f"{_literal(first)} text-1"]
        if k > 0:
            alternatives.append(
                f"{_literal(marker[k])} text-{k + 1}" if k + 1 < len(marker) else ""
            )
        excluded = {first, marker[k]} if k > 0 else {first}
        alternatives.append(f"{_char_class_except(excluded)} text-0")
        # The empty first alternative: the text may end in any state.
        rules.append(f"{here} ::= | {' | '.join(a for a in alternatives if a)}")
    rules.insert(0, "text ::= text-0")
    return rules


def _char_class_except(chars: set[str]) -> str:
    escaped = "".join(_class_char(c) for c in sorted(chars))
    return f"[^{escaped}]"


def _class_char(char: str) -> str:
    if char in "\t\r\n":
        return {"\t": "\\t", "\r": "\\r", "\n": "\\n"}[char]
    if char in "]\\^-[":
        return f"\\x{ord(char):02X}"
    return char
