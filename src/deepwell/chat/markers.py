"""Finding markers in streamed text that may cut them anywhere."""

from __future__ import annotations

from deepwell.engine.text import partial_match


def first_marker(buffer: str, markers: tuple[str, ...]) -> tuple[int, str] | None:
    """The earliest of ``markers`` in ``buffer``, as ``(position, marker)``."""
    hits = [(i, m) for m in markers if (i := buffer.find(m)) >= 0]
    return min(hits) if hits else None


partial_marker = partial_match
"""Length of the longest suffix of a buffer that begins one of the markers: the text to
hold back (``engine.text``'s rule, the same as for stop strings)."""


class MarkerFilter:
    """Drops ``markers`` from streamed text, holding back only what may begin one."""

    def __init__(self, markers: tuple[str, ...]) -> None:
        self._markers = tuple(m for m in markers if m)
        self._held = ""

    def feed(self, text: str) -> str:
        buffer = self._held + text
        out: list[str] = []
        while (found := first_marker(buffer, self._markers)) is not None:
            at, marker = found
            out.append(buffer[:at])
            buffer = buffer[at + len(marker) :]
        keep = partial_marker(buffer, self._markers)
        out.append(buffer[: len(buffer) - keep])
        self._held = buffer[len(buffer) - keep :]
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
