"""Counting what a reply uses as it runs, and what of it is billed.

The counts come from the engine's events as they arrive, so a reply cut at any point
(a client gone, a shutdown) is charged for exactly what was computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepwell.core.events import Usage
from deepwell.engine.base import Done, EngineEvent, Piece


@dataclass(slots=True)
class Meter:
    """The tokens of one reply so far.

    Cache hits are reported and billed in whole blocks of ``block_tokens``, as DeepSeek
    does; the tokens of a partial block count as misses. The prompt counts from the
    first generation the engine admitted (in thinking mode the answer's generation
    finds the reasoning in the KV cache; that is not new prompt); before any was
    admitted, nothing was computed and the prompt counts 0.
    """

    block_tokens: int
    prompt_tokens: int = 0
    cached_tokens: int = 0
    admitted: bool = False
    reasoning_tokens: int = 0
    answer_tokens: int = 0

    def count(self, event: EngineEvent, prompt: int, *, reasoning: bool = False) -> None:
        """Count an engine event of the reply, whose prompt is ``prompt`` tokens long (the
        think markers deepwell writes between reasoning and answer are not prompt).
        Pieces add up as they come; ``Done`` carries the engine's own total for its
        generation, which stands."""
        if isinstance(event, Piece):
            self._add(event.tokens, reasoning=reasoning, total=False)
            return
        self._admit(prompt, event.cached_tokens)
        if isinstance(event, Done):
            self._add(event.completion_tokens, reasoning=reasoning, total=True)

    def _admit(self, prompt: int, cached: int) -> None:
        if not self.admitted:
            self.admitted = True
            self.prompt_tokens = prompt
            self.cached_tokens = min(cached, prompt)

    def _add(self, tokens: int, *, reasoning: bool, total: bool) -> None:
        if reasoning:
            self.reasoning_tokens = tokens if total else self.reasoning_tokens + tokens
        else:
            self.answer_tokens = tokens if total else self.answer_tokens + tokens

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.reasoning_tokens + self.answer_tokens,
            cache_hit_tokens=self.cached_tokens // self.block_tokens * self.block_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )
