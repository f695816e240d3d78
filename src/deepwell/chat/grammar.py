"""Constraints for constrained decoding: JSON output, JSON Schemas and tool calls.

They are engine-neutral values (``engine.base.Constraint``): a JSON Schema, or a Lark
grammar in llguidance's dialect that embeds each tool's argument schema as
``%json {...}``. A marker that is one special token of the model (Qwen's
``<tool_call>``, DeepSeek's call markers) is written as a token reference,
so the model emits it as it was trained to; any other text is a string literal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from deepwell.chat.toolcalls import ToolCallFormat
from deepwell.engine.base import Constraint
from deepwell.vocabulary import Tool

# How JSON is written inside constraints: one space after ':' and ',', no other
# whitespace. The model's own habit, and it cannot stall in endless blank space.
JSON_STYLE = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "}

ANY_OBJECT: Mapping[str, Any] = {"type": "object"}


def no_parameters(*, closed: bool = False) -> dict[str, Any]:
    """The ``parameters`` schema of a function declared without one: an object with no
    properties, new at each call. ``closed`` adds ``additionalProperties: false``, so that
    only ``{}`` is valid (what strict mode checks and call grammars enforce)."""
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _schema_json(schema: Mapping[str, Any]) -> str:
    """``schema`` as JSON text, closed (see ``closed``), with deepwell's JSON style."""
    return json.dumps({**closed(schema), "x-guidance": JSON_STYLE}, ensure_ascii=False)


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists its ``properties`` and says nothing of
    ``additionalProperties`` taking only those: what models are asked for, what
    llama.cpp's grammars and OpenAI's strict mode do, and the end of a model that
    would otherwise add keys until it runs out of tokens."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if isinstance(out.get("properties"), Mapping):
        out.setdefault("additionalProperties", False)
    return out


def json_schema(schema: Mapping[str, Any]) -> Constraint:
    """Text that is one JSON value valid against ``schema``."""
    return Constraint("json_schema", _schema_json(schema))


JSON_OBJECT = json_schema(ANY_OBJECT)
"""JSON output mode: any JSON object."""


def arguments_schema(tool: Tool) -> Mapping[str, Any]:
    """The schema ``tool``'s arguments follow; a function without one takes only ``{}``."""
    return tool.parameters if tool.parameters is not None else no_parameters(closed=True)


def tool_calls(
    tools: Sequence[Tool],
    schemas: Sequence[Mapping[str, Any]],
    fmt: ToolCallFormat,
    *,
    specials: frozenset[str] = frozenset(),
    parallel: bool = True,
) -> Constraint:
    """A reply made only of calls to ``tools`` (one, unless ``parallel``), whose
    arguments follow ``schemas`` (one per tool). ``specials`` are the format's markers
    that are single special tokens of the model."""
    lark = _Lark(fmt, specials)
    return Constraint("lark", lark.grammar("start: calls", tools, schemas, parallel=parallel))


def text_or_tool_calls(
    tools: Sequence[Tool],
    schemas: Sequence[Mapping[str, Any]],
    fmt: ToolCallFormat,
    *,
    specials: frozenset[str] = frozenset(),
    parallel: bool = True,
) -> Constraint:
    """Free text, or calls whose arguments follow ``schemas``: ``tool_choice: auto`` with
    strict tools. The text cannot contain the call marker, so a call, once begun, is
    constrained to the end.

    Where the marker is a special token, the text stops before it by itself; for
    formats that also take bare JSON calls, a reply that opens like one (with ``{``, a
    fence or blank space) must then be schema-valid bare calls. Where the marker is
    plain text, the text runs lazily up to the marker's first occurrence.
    """
    lark = _Lark(fmt, specials)
    opener = fmt.group_open or fmt.open
    if opener in specials and fmt.bare:
        start = "start: bare_calls | PLAIN? calls?\nPLAIN: /[^{`\\s](?s:.*)/"
    elif opener in specials:
        start = "start: TEXT? calls?\nTEXT: /(?s:.+)/"
    else:
        pattern = _regex_escape(opener)
        start = (
            "start: TEXT | text_until_call calls_after_opener\n"
            f"TEXT: /(?s:.*)/ & ~/(?s:.*{pattern}.*)/\n"
            f"text_until_call[lazy]: /(?s:.*){pattern}/"
        )
    return Constraint("lark", lark.grammar(start, tools, schemas, parallel=parallel))


def text_only(
    fmt: ToolCallFormat, specials: frozenset[str] = frozenset(), names: Sequence[str] = ()
) -> Constraint:
    """Free text that makes no call in ``fmt``: ``tool_choice: none`` with tools in the
    prompt. A marker that is a special token is out of the text's reach by itself; one
    that is plain text may not occur in it. For formats that also take bare JSON calls,
    neither may the head of a bare call to one of ``names`` (``{"name": "f"``), which a
    model that may not call writes instead."""
    forbidden = [_regex_escape(m) for m in (fmt.group_open, fmt.open) if m and m not in specials]
    if fmt.bare and names:
        blank = "[ \\t\\r\\n]*"
        key = _regex_escape("{") + blank + _regex_escape('"name"') + blank + ":" + blank
        called = "|".join(_regex_escape(f'"{name}"') for name in names)
        forbidden.append(f"{key}({called})")
    text = "/(?s:.+)/"
    if forbidden:
        text += f" & ~/(?s:.*({'|'.join(forbidden)}).*)/"
    return Constraint("lark", f"start: TEXT?\nTEXT: {text}\n")


class _Lark:
    """Writes the rules of a format's calls."""

    def __init__(self, fmt: ToolCallFormat, specials: frozenset[str]) -> None:
        self._fmt = fmt
        self._specials = specials

    def grammar(
        self,
        start: str,
        tools: Sequence[Tool],
        schemas: Sequence[Mapping[str, Any]],
        *,
        parallel: bool,
    ) -> str:
        fmt = self._fmt
        names = [f"call_{i}" for i in range(len(tools))]
        more = f"({self._text(fmt.separator)} call)*" if parallel else ""
        group_open = self._text(fmt.group_open)
        group_close = self._text(fmt.group_close)
        rules = [
            start,
            f"calls: {group_open} call {more} {group_close}",
            f"call: {' | '.join(names)}",
        ]
        if "calls_after_opener" in start:
            # After a lazy text that ended with the opener: the calls without it.
            rests = " | ".join(f"rest_{i}" for i in range(len(tools)))
            tail = f"call {more} {group_close}" if fmt.group_open else f"({rests}) {more}"
            rules.append(f"calls_after_opener: {tail}")
        for i, (tool, schema) in enumerate(zip(tools, schemas, strict=True)):
            rules.append(f"call_{i}: {self._text(fmt.open)} rest_{i}")
            after = f"{self._text(fmt.call_after)} {self._text(fmt.close)}"
            rules.append(f"rest_{i}: {self._text(fmt.call_head(tool.name))} args_{i} {after}")
            rules.append(f"args_{i}: %json {_schema_json(schema)}")
        if "bare_calls" in start:
            rules += self._bare(tools)
        return "\n".join(rule.rstrip() for rule in rules) + "\n"

    def _bare(self, tools: Sequence[Tool]) -> list[str]:
        """Bare calls in a row, in a Markdown fence or not, as the parser takes them."""
        calls = []
        for i, tool in enumerate(tools):
            head = _literal(f'{{"name": "{tool.name}", "arguments": ')
            calls.append(f"{head} args_{i} {_literal('}')}")
        return [
            'bare_calls: /[ \\t\\r\\n]*/ (bare_list | "```" /[a-z]*/ "\\n" bare_list "\\n```")',
            'bare_list: bare_call ("\\n" bare_call)*',
            f"bare_call: {' | '.join(f'({call})' for call in calls)}",
        ]

    def _text(self, text: str) -> str:
        """``text`` as Lark: special tokens by reference, the rest as literals."""
        if not text:
            return ""
        for special in sorted(self._specials, key=len, reverse=True):
            before, found, after = text.partition(special)
            if found:
                parts = (self._text(before), special, self._text(after))
                return " ".join(part for part in parts if part)
        return _literal(text)


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


_REGEX_SPECIAL = set('\\.^$|?*+()[]{}/&~"')


def _regex_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in _REGEX_SPECIAL else c for c in text)
