"""Constraints compiled by llguidance into token masks over a model's vocabulary.

llguidance (a Rust Earley parser and lexer) bounds everything it does: grammar size,
lexer states, and the work of one mask (``LLParserLimits``). A constraint it refuses
is refused in milliseconds; one it accepts costs at most a bounded time per token, and
a step that would exceed it puts the matcher in an error state, which ends only that
sequence.
"""

from __future__ import annotations

from typing import Any

import llguidance
import numpy as np

from deepwell.engine.base import Constraint, ConstraintError

LIMITS = llguidance.LLParserLimits(verbose_errors=False)
"""llguidance's default bounds; error messages never echo the grammar or the state."""


class Matcher:
    """One sequence's place in its constraint: the mask of the next token, then the
    token sampled. Used by the engine thread only."""

    def __init__(self, matcher: llguidance.LLMatcher) -> None:
        self._matcher = matcher

    def mask(self, logits: np.ndarray[Any, np.dtype[np.float32]]) -> str | None:
        """Set the logits of every token the constraint does not allow to -inf; the
        error, if the constraint can go no further."""
        allowed = np.frombuffer(self._matcher.compute_logit_bias(), dtype=np.uint8)
        if self._matcher.is_error():
            return _one_line(self._matcher.get_error())
        n = min(len(allowed), len(logits))
        logits[:n][allowed[:n] == 0] = -np.inf
        return None

    def consume(self, token: int) -> str | None:
        """Advance past ``token``; the error, if it was not allowed."""
        if self._matcher.consume_token(token):
            return None
        return _one_line(self._matcher.get_error() or "the sampled token breaks the constraint")


class Constraints:
    """Compiles constraints for one vocabulary, given as an llguidance tokenizer."""

    def __init__(self, tokenizer: llguidance.LLTokenizer) -> None:
        self._tokenizer = tokenizer

    def matcher(self, constraint: Constraint) -> Matcher:
        """A fresh matcher for ``constraint``; ``ConstraintError`` if it cannot be
        enforced (including one that allows nothing from its start)."""
        grammar = llguidance_grammar(constraint)
        matcher = llguidance.LLMatcher(self._tokenizer, grammar, limits=LIMITS, log_level=0)
        if not matcher.is_error():
            matcher.compute_logit_bias()
        if matcher.is_error():
            raise ConstraintError(_one_line(matcher.get_error()))
        return Matcher(matcher)

    def check(self, constraint: Constraint) -> None:
        self.matcher(constraint)


class _Bytes:
    """A vocabulary of the 256 bytes and an end token, as llguidance wraps tokenizers."""

    eos_token_id = 256
    bos_token_id = None
    tokens = (*(bytes([b]) for b in range(256)), b"<|end|>")
    special_token_ids = (256,)

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


def byte_tokenizer() -> llguidance.LLTokenizer:
    """A tokenizer of single bytes: enough to check a constraint for an engine whose
    model's vocabulary is not at hand (its special tokens excepted)."""
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Bytes()))


def llguidance_grammar(constraint: Constraint) -> str:
    """``constraint`` as an llguidance grammar definition."""
    if constraint.kind == "lark":
        return str(llguidance.LLMatcher.grammar_from_lark(constraint.source))
    try:
        return str(llguidance.LLMatcher.grammar_from_json_schema(constraint.source))
    except ValueError as exc:
        raise ConstraintError(f"the JSON Schema is not a JSON object: {exc}") from None


def _one_line(message: str, limit: int = 300) -> str:
    if "NoExtensionBias" in message:
        return "the constraint allows no output (is the schema satisfiable?)"
    return " ".join(message.split())[:limit] or "invalid constraint"
