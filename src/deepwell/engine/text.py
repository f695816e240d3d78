"""Turning generated tokens into text: UTF-8 reassembly and stop strings.

``PieceAssembler`` is what every engine runs over the tokens it generates.
``partial_match`` is the hold-back rule of every scan of streamed text for strings
(stop strings here, ``chat.markers`` for markup).
"""

from __future__ import annotations

import codecs

from deepwell.engine.base import Piece
from deepwell.vocabulary import TokenLogprob


class PieceAssembler:
    """Turns one generation's tokens into ``Piece`` events, with its stop strings applied.

    ``token`` returns a piece for every generated token (``tokens=1``), whose text is
    empty while a multi-byte character or a possible stop string is incomplete; the
    logprobs of such tokens are held and come with the next piece that has text. Once
    a stop string is found, ``stopped`` is true and the generation is over. ``end``,
    called once when a generation ends without a stop string, gives what is still held
    as a last piece (``tokens=0``), or None when nothing is.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._utf8 = Utf8Stream()
        self._stops = StopMatcher(stops)
        self._pending: list[TokenLogprob] = []

    @property
    def stopped(self) -> bool:
        return self._stops.stopped

    @property
    def matched(self) -> str | None:
        """The stop string that ended the generation, if one did."""
        return self._stops.matched

    def token(self, data: bytes, logprob: TokenLogprob | None = None) -> Piece:
        """The piece of one generated token: its bytes, and its logprob if asked for."""
        if logprob is not None:
            self._pending.append(logprob)
        text = self._stops.feed(self._utf8.feed(data))
        return Piece(text, self._take() if text else (), tokens=1)

    def end(self) -> Piece | None:
        text = self._stops.feed(self._utf8.flush()) + self._stops.flush()
        return Piece(text, self._take()) if text or self._pending else None

    def _take(self) -> tuple[TokenLogprob, ...]:
        taken, self._pending = tuple(self._pending), []
        return taken


class Utf8Stream:
    """Decodes byte pieces to text, holding back incomplete multi-byte characters."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings in streamed text.

    ``feed`` returns the text that is safe to emit: text that may still turn out to be
    the beginning of a stop string is held back until it is decided. After a stop
    string is found, ``stopped`` is true and nothing more is emitted.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False
        # The stop string found, once ``stopped``.
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        buffer = self._held + text
        found = self._first_stop(buffer)
        if found is not None:
            cut, self.matched = found
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        keep = partial_match(buffer, self._stops)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _first_stop(self, buffer: str) -> tuple[int, str] | None:
        """Where the stop string that completes first begins (as a stream would see it),
        and which one it is."""
        found = [
            (i + len(s), i, s) for s, i in ((s, buffer.find(s)) for s in self._stops) if i >= 0
        ]
        if not found:
            return None
        _, start, stop = min(found)
        return start, stop


def partial_match(buffer: str, strings: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``buffer`` that begins one of ``strings``.

    That suffix is what a stream must hold back: the next piece may complete it.
    A whole string at the end does not count; finding those is the caller's part.
    """
    longest = 0
    for string in strings:
        for n in range(min(len(string) - 1, len(buffer)), longest, -1):
            if string.startswith(buffer[-n:]):
                longest = n
                break
    return longest
