"""Tool calls in a model's own syntax: streaming parsers and a registry of formats.

A format knows how its model writes a call (the markers around it and how the
name and arguments sit inside) and how to force one with a grammar. Parsers take
the reply as it streams, in pieces cut anywhere, and separate the answer text from
whole tool calls; markup never reaches the text.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from deepwell.chat.markers import first_marker, partial_marker
from deepwell.errors import ConfigurationError

_ID_ALPHABET = string.ascii_letters + string.digits


def call_id(index: int) -> str:
    """A DeepSeek-style tool-call id: ``call_<2-digit index>_<24 alphanumerics>``."""
    tail = "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))
    return f"call_{index:02d}_{tail}"


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A whole call; after a ``CallStart``, the end of that call (with all its arguments)."""

    name: str
    arguments: str  # a JSON object, serialised


@dataclass(frozen=True, slots=True)
class CallStart:
    """A call to ``name`` has begun; ``CallArguments`` pieces follow as they are written,
    and a ``ParsedCall`` ends it."""

    name: str


@dataclass(frozen=True, slots=True)
class CallArguments:
    text: str


Segment = str | ParsedCall | CallStart | CallArguments


@dataclass(frozen=True, slots=True)
class ToolCallFormat:
    """How a model family writes tool calls.

    Every call sits between ``open`` and ``close``; ``decode`` reads the text in
    between, and ``cut`` tells whether a body that never closed is a call cut short
    (the reply ran out of tokens inside it). ``ignore`` are markers around a group of
    calls, dropped from the text. A call to ``name`` is written ``open +
    call_head(name) + arguments + call_after + close`` (what a grammar forces); calls in
    a row are separated by ``separator``.
    """

    name: str
    open: str
    close: str
    decode: Callable[[str], ParsedCall | None]
    cut: Callable[[str], bool]
    call_head: Callable[[str], str]
    call_after: str = ""
    separator: str = ""
    ignore: tuple[str, ...] = ()
    group_open: str = ""
    group_close: str = ""
    bare: bool = False

    @property
    def markers(self) -> tuple[str, ...]:
        """Every marker the format writes around calls."""
        found = (self.open, self.close, self.group_open, self.group_close)
        return tuple(marker for marker in found if marker)

    def parser(
        self, names: frozenset[str] = frozenset(), *, stream: bool = False
    ) -> ToolCallParser:
        """A parser for one reply; with ``bare``, a reply (or what follows a call) that
        is only a JSON call to one of ``names``, fenced or not, counts as a call too.
        With ``stream``, calls to ``names`` written exactly as ``call_head`` writes them
        (as a grammar forces them) stream their arguments as they come."""
        return ToolCallParser(self, names, bare=self.bare, stream=stream)


class ToolCallParser:
    """Splits a streamed reply into answer text and whole tool calls.

    ``feed`` returns what is decided so far, in order: text that cannot be the start
    of a marker, and calls whose closing marker has arrived. Whitespace that only
    separates calls (or text from calls) is dropped. A call that does not decode is
    given back as text without its markers, unless the reply ended inside it and it is
    a call cut short: that one is markup, and dropped. Bare calls (see ``ToolCallFormat.parser``)
    are held back until their JSON object closes.
    """

    def __init__(
        self,
        fmt: ToolCallFormat,
        names: frozenset[str] = frozenset(),
        *,
        bare: bool = False,
        stream: bool = False,
    ) -> None:
        self._fmt = fmt
        self._markers = (fmt.open, *fmt.ignore)
        self._names = names if bare else frozenset()
        self._heads = {fmt.call_head(name): name for name in names} if stream else {}
        self._streamed: _Arguments | None = None
        self._whole = False  # this call is not written as its head says: decided at its end
        self._buffer = ""
        self._inside = False
        self._open = True  # nothing but blanks and calls so far: a bare call may come
        self._blank = ""  # whitespace held until non-blank text follows
        self.calls = 0

    def feed(self, text: str) -> list[Segment]:
        self._buffer += text
        out: list[Segment] = []
        while self._step(out):
            pass
        return out

    def flush(self) -> list[Segment]:
        out: list[Segment] = []
        if self._streamed is not None:
            # Cut while its arguments streamed: what was written stands, unfinished.
            self._inside, self._streamed = False, None
        rest, self._buffer = self._buffer, ""
        if self._inside:
            self._inside = self._whole = False
            if self._fmt.decode(rest) is not None or not self._fmt.cut(rest):
                self._add_call(rest, out)
        elif not self._bare_call(rest, out, final=True):
            self._add_text(rest, out)
        if self._blank and not self.calls:
            out.append(self._blank)
        self._blank = ""
        return out

    def _step(self, out: list[Segment]) -> bool:
        """Consume what can be decided; True while progress is possible."""
        if self._inside and self._heads and not self._whole:
            return self._stream_step(out)
        if self._inside:
            end = self._buffer.find(self._fmt.close)
            if end < 0:
                return False
            body = self._buffer[:end]
            self._buffer = self._buffer[end + len(self._fmt.close) :]
            self._inside = self._whole = False
            self._add_call(body, out)
            return True
        if self._names and self._open:
            decided = self._bare_call(self._buffer, out, final=False)
            if decided is None:
                return False
            if decided:
                return True
        found = first_marker(self._buffer, self._markers)
        if found is None:
            keep = partial_marker(self._buffer, self._markers)
            self._add_text(self._buffer[: len(self._buffer) - keep], out)
            self._buffer = self._buffer[len(self._buffer) - keep :]
            return False
        at, marker = found
        self._add_text(self._buffer[:at], out)
        self._buffer = self._buffer[at + len(marker) :]
        if marker == self._fmt.open:
            self._inside = True
            self._blank = ""
        return True

    def _stream_step(self, out: list[Segment]) -> bool:
        """Inside a call whose arguments stream: its head, its arguments as they come,
        then its end at the closing marker."""
        call = self._streamed
        if call is None:
            head = self._head()
            if head is None:
                return False
            if head is False:
                self._whole = True
                return True
            name, length = head
            self._buffer = self._buffer[length:]
            self._streamed = _Arguments(name)
            out.append(CallStart(name))
            return True
        if not call.done:
            taken = call.scan(self._buffer)
            if taken:
                out.append(CallArguments(self._buffer[:taken]))
                self._buffer = self._buffer[taken:]
            return call.done
        end = self._buffer.find(self._fmt.close)
        if end < 0:
            return False
        self._buffer = self._buffer[end + len(self._fmt.close) :]
        self._inside, self._streamed = False, None
        self._blank, self._open = "", True
        self.calls += 1
        out.append(ParsedCall(call.name, call.text))
        return True

    def _head(self) -> tuple[str, int] | Literal[False] | None:
        """The tool whose head the call opens with and the head's length; None while
        the buffer may still become one; False when it cannot."""
        for head, name in self._heads.items():
            if self._buffer.startswith(head):
                return name, len(head)
        if any(head.startswith(self._buffer) for head in self._heads):
            return None
        return False

    def _bare_call(self, text: str, out: list[Segment], *, final: bool) -> bool | None:
        """A bare call at the start of ``text``: True when taken (the rest stays in the
        buffer), False when there is none, None when more text must come first."""
        if not self._names or not self._open or not text.strip():
            return False
        lead = text.lstrip()
        if lead[0] not in "{`":
            self._open = False
            return False
        found = _bare_object(lead, final=final)
        if found is None:
            return None
        call = self._fmt.decode(found[0]) if found is not False else None
        if found is False or call is None or call.name not in self._names:
            self._open = False
            return False
        self._buffer = found[1]
        self._blank = ""
        self.calls += 1
        out.append(call)
        return True

    def _add_text(self, text: str, out: list[Segment]) -> None:
        if not text:
            return
        if not text.strip():
            self._blank += text
            return
        self._open = False
        body = text.rstrip()
        out.append(self._blank + body)
        self._blank = text[len(body) :]

    def _add_call(self, body: str, out: list[Segment]) -> None:
        call = self._fmt.decode(body)
        if call is None:
            self._add_text(body.strip(), out)
            return
        self._blank = ""
        self._open = True
        self.calls += 1
        out.append(call)


class _Arguments:
    """The arguments of a streamed call: one JSON value, read until it closes (an
    object, an array or a string; a bare number or word ends before blank space or
    ``}``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.text = ""
        self.done = False
        self._depth = 0
        self._string = False
        self._escape = False

    def scan(self, text: str) -> int:
        """Read ``text`` up to the end of the value; how many characters belong to it."""
        for i, char in enumerate(text):
            if self._ends_before(char):
                self.text += text[:i]
                self.done = True
                return i
            self._read(char)
            if self.done:
                self.text += text[: i + 1]
                return i + 1
        self.text += text
        return len(text)

    def _ends_before(self, char: str) -> bool:
        bare = self.text and self._depth == 0 and not self._string
        return bool(bare) and self.text[0] not in '{["' and char in " \t\r\n},"

    def _read(self, char: str) -> None:
        if self._string:
            if self._escape:
                self._escape = False
            elif char == "\\":
                self._escape = True
            elif char == '"':
                self._string = False
                self.done = self._depth == 0
        elif char == '"':
            self._string = True
        elif char in "{[":
            self._depth += 1
        elif char in "}]":
            self._depth -= 1
            self.done = self._depth <= 0


_FENCE = "```"


def _bare_object(text: str, *, final: bool) -> tuple[str, str] | Literal[False] | None:
    """A JSON object that ``text`` opens with, in a Markdown fence or not, as
    ``(object, rest)``; False when there is none; None when more text must come."""
    body = text
    fenced = text.startswith(_FENCE)
    if fenced:
        newline = text.find("\n")
        if newline < 0:
            return False if final else None
        body = text[newline + 1 :].lstrip()
    elif _FENCE.startswith(text):
        return False if final else None
    if not body:
        return False if final else None
    if body[0] != "{":
        return False
    end = _object_end(body)
    if end is None:
        return False if final else None
    rest = body[end:]
    if fenced:
        tail = rest.lstrip()
        if tail.startswith(_FENCE):
            rest = tail[len(_FENCE) :]
        elif _FENCE.startswith(tail) and not final:
            return None
    return body[:end], rest


def _object_end(text: str) -> int | None:
    """Where the JSON object ``text`` starts with ends (strings respected)."""
    depth = 0
    in_string = escaped = False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _arguments_json(value: object) -> str | None:
    """Arguments as a JSON object string; a string holding a JSON object is accepted."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return None
    try:
        return json.dumps(value, ensure_ascii=False)
    except RecursionError:
        return None


# -- Hermes / Qwen: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call> ------


def _decode_hermes(body: str) -> ParsedCall | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # nested too deep for Python: not a call
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = _arguments_json(data.get("arguments", data.get("parameters")))
    return None if arguments is None else ParsedCall(data["name"], arguments)


def _cut_hermes(body: str) -> bool:
    lead = body.lstrip()
    return lead.startswith("{") and _object_end(lead) is None


def _hermes_head(name: str) -> str:
    return f'\n{{"name": "{name}", "arguments": '


HERMES = ToolCallFormat(
    name="hermes",
    open="<tool_call>",
    close="</tool_call>",
    decode=_decode_hermes,
    cut=_cut_hermes,
    call_head=_hermes_head,
    call_after="}\n",
    separator="\n",
    bare=True,
)


# -- DeepSeek V3.1+: <|tool_call_begin|>name<|tool_sep|>{...}<|tool_call_end|> -----------
# (the bars are U+FF5C and the underscores U+2581 in the real markers)


def _ds(name: str) -> str:
    return "<\uff5c" + name.replace("_", "\u2581") + "\uff5c>"


_DS_CALLS_BEGIN = _ds("tool_calls_begin")
_DS_CALLS_END = _ds("tool_calls_end")
_DS_CALL_BEGIN = _ds("tool_call_begin")
_DS_CALL_END = _ds("tool_call_end")
_DS_SEP = _ds("tool_sep")


def _decode_deepseek(body: str) -> ParsedCall | None:
    name, sep, arguments = body.partition(_DS_SEP)
    name = name.strip()
    if not sep or not name:
        return None
    parsed = _arguments_json(arguments.strip() or "{}")
    return None if parsed is None else ParsedCall(name, parsed)


def _cut_deepseek(body: str) -> bool:
    name = body.partition(_DS_SEP)[0].strip()
    return bool(name) and not any(char.isspace() for char in name)


def _deepseek_head(name: str) -> str:
    return f"{name}{_DS_SEP}"


DEEPSEEK = ToolCallFormat(
    name="deepseek",
    open=_DS_CALL_BEGIN,
    close=_DS_CALL_END,
    decode=_decode_deepseek,
    cut=_cut_deepseek,
    call_head=_deepseek_head,
    ignore=(_DS_CALLS_BEGIN, _DS_CALLS_END),
    group_open=_DS_CALLS_BEGIN,
    group_close=_DS_CALLS_END,
)


FORMATS: dict[str, ToolCallFormat] = {fmt.name: fmt for fmt in (HERMES, DEEPSEEK)}


def tool_format(name: str) -> ToolCallFormat:
    """The format registered under ``name`` (a backing model's ``tool_format``)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown tool-call format {name!r}; known: {', '.join(sorted(FORMATS))}"
        ) from None
