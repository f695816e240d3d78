"""Prompt-lookup drafts: guessing a sequence's next tokens from its own history.

Edits, FIM and answers that quote their input copy long spans of the prompt. When the
last ``n`` tokens appeared before, the tokens that followed them then are a cheap guess
of what follows now. The scheduler reads the guess in the same batch as the sequence's
next token and keeps the longest prefix its sampler agrees with (see the scheduler's
``_verify``), so the output is exactly what decoding one token at a time gives.

No llama.cpp here: this is bookkeeping over token ids.
"""

from __future__ import annotations

from collections.abc import Sequence

NGRAM = 4
"""How many of the latest tokens must have appeared before, in that order (with 3, plain
chat answers drafted 2.5 times as often and took a sixth of the guesses)."""
MAX_DRAFT = 12
"""The most tokens one draft guesses."""
TILE = 4
"""Drafts are sized so that a step reads a multiple of this many tokens (the draft and
the token before it): llama.cpp's CPU kernels work in tiles of four, and a step of 4, 8
or 12 tokens costs about what one of 3, 6 or 11 does (``bench/step_cost.py``). A step of
2 tokens costs almost what two steps of one do, so the smallest draft is 3."""
MIN_DRAFT = TILE - 1
PAUSE_AFTER = 3
"""Drafts in a row that did not pay (less than half of them taken), after which
drafting pauses."""
PAUSE_STEPS = 16
"""How many tokens a paused drafter lets pass before it guesses again (doubled at each
further pause, so a sequence that does not copy soon stops paying for guesses)."""


class PromptLookup:
    """The history of one sequence, indexed by its ``NGRAM``-grams."""

    def __init__(self, tokens: Sequence[int], max_draft: int = MAX_DRAFT) -> None:
        self._tokens: list[int] = []
        self._next: dict[tuple[int, ...], int] = {}
        self._max = min(max_draft, _tiled(max_draft))
        self._size = min(self._max, MIN_DRAFT)
        self._misses = 0
        self._paused = 0
        self._pause = PAUSE_STEPS
        for token in tokens:
            self.extend(token)

    def extend(self, token: int) -> None:
        """Add the sequence's next token."""
        tokens = self._tokens
        if len(tokens) >= NGRAM:
            self._next[tuple(tokens[-NGRAM:])] = len(tokens)
        tokens.append(token)
        if self._paused:
            self._paused -= 1

    def draft(self, room: int) -> list[int]:
        """At most ``room`` tokens that may follow, or none."""
        if self._paused or len(self._tokens) < NGRAM:
            return []
        start = self._next.get(tuple(self._tokens[-NGRAM:]))
        if start is None:
            return []
        return self._tokens[start : start + min(self._size, room)]

    def feedback(self, proposed: int, accepted: int) -> None:
        """How a draft of ``proposed`` tokens fared: grow the next one after a draft that
        was taken whole, shrink it after one that was not, pause after many misses."""
        if accepted == proposed:
            self._size = min(self._max, self._size + TILE)
        else:
            self._size = min(self._max, _tiled(accepted + 1))
        self._misses = self._misses + 1 if 2 * accepted < proposed else 0
        if self._misses >= PAUSE_AFTER:
            self._misses = 0
            self._paused = self._pause
            self._pause *= 2


def _tiled(size: int) -> int:
    """The largest draft of at most ``size`` tokens that fills a step's tiles, and never
    less than ``MIN_DRAFT``."""
    return max(MIN_DRAFT, (size + 1) // TILE * TILE - 1)
