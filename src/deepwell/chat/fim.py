"""Fill-in-the-middle prompts: the text before and after a gap, in the model's FIM tokens."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from deepwell.engine.base import Engine
from deepwell.settings import FimTokens

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FimFormat:
    """The token ids of a model's FIM markers, in prefix-suffix-middle order."""

    prefix: int
    suffix: int
    middle: int

    def render(self, before: Sequence[int], after: Sequence[int]) -> tuple[int, ...]:
        """The prompt that asks the model for the text between ``before`` and ``after``."""
        return (self.prefix, *before, self.suffix, *after, self.middle)


def fim_format(name: str, tokens: FimTokens | None, engine: Engine) -> FimFormat | None:
    """``tokens`` as ``engine``'s ids, or None when the model cannot do FIM.

    A marker that is not exactly one token of the vocabulary means the configuration
    does not fit the model: FIM is then off for it, with a warning.
    """
    if tokens is None:
        return None
    markers = (tokens.prefix, tokens.suffix, tokens.middle)
    ids = [engine.tokenize(marker, special=True) for marker in markers]
    singles = [found[0] for found in ids if len(found) == 1]
    if len(singles) != len(ids) or len(set(singles)) != len(ids):
        log.warning(
            "backing model %s: its FIM tokens are not single tokens of its vocabulary; "
            "FIM completion is off for it",
            name,
        )
        return None
    return FimFormat(*singles)
