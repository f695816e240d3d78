"""The tool calls of one reply, as events: ids and indexes, arguments streamed as
they are written, and a call made again word for word ending the reply."""

from __future__ import annotations

from dataclasses import dataclass

from deepwell.chat.toolcalls import CallArguments, CallStart, ParsedCall, call_id
from deepwell.core.events import ToolCallDelta


@dataclass(slots=True)
class _Open:
    """A streamed call still being written; ``index`` is None until it is sent."""

    name: str
    text: str = ""
    index: int | None = None


class ReplyCalls:
    """Turns a parser's call segments into ``ToolCallDelta`` events.

    A model going round in circles writes the same call again and again; a call that
    repeats an earlier one word for word sets ``repeated``, and the reply should end
    there. So that it is never sent, a streamed call is held back while its arguments
    so far could still turn out to repeat an earlier call's.
    """

    def __init__(self) -> None:
        self.count = 0
        self.repeated = False
        self._seen: list[tuple[str, str]] = []
        self._open: _Open | None = None
        self._next = 0

    def add(self, segment: ParsedCall | CallStart | CallArguments) -> list[ToolCallDelta]:
        if isinstance(segment, CallStart):
            self._open = _Open(segment.name)
            return []
        if isinstance(segment, CallArguments):
            return self._more(segment.text)
        if self._open is not None:
            return self._close(segment.arguments)
        return self._whole(segment.name, segment.arguments)

    def _more(self, text: str) -> list[ToolCallDelta]:
        call = self._open
        assert call is not None
        call.text += text
        if call.index is not None:
            return [ToolCallDelta(call.index, None, None, text)]
        if any(name == call.name and old.startswith(call.text) for name, old in self._seen):
            return []
        return [self._begin(call)]

    def _close(self, arguments: str) -> list[ToolCallDelta]:
        call, self._open = self._open, None
        assert call is not None
        if call.index is None and (call.name, arguments) in self._seen:
            self.repeated = True
            return []
        out = [self._begin(call)] if call.index is None else []
        self._seen.append((call.name, arguments))
        self.count += 1
        return out

    def _whole(self, name: str, arguments: str) -> list[ToolCallDelta]:
        if (name, arguments) in self._seen:
            self.repeated = True
            return []
        self._seen.append((name, arguments))
        self.count += 1
        index = self._take_index()
        return [ToolCallDelta(index, call_id(index), name, arguments)]

    def _begin(self, call: _Open) -> ToolCallDelta:
        call.index = self._take_index()
        return ToolCallDelta(call.index, call_id(call.index), call.name, call.text)

    def _take_index(self) -> int:
        index, self._next = self._next, self._next + 1
        return index
