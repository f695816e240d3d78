"""The llguidance tokenizer of a llama.cpp vocabulary, for constraint masks."""

from __future__ import annotations

from typing import Any

import llama_cpp
import llguidance
from llguidance.llamacpp import lltokenizer_from_vocab


def vocabulary_tokenizer(vocab: Any) -> llguidance.LLTokenizer:
    """Build it once per model: it reads every token (about a second for 150k).

    A constraint that is complete allows every end-of-generation token of the model
    (Qwen ends a turn with ``<|im_end|>`` or ``<|endoftext|>``), as the scheduler ends at
    any of them."""
    n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
    ends = [token for token in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, token)]
    return lltokenizer_from_vocab(vocab, eos_token=ends or None)


def is_special(vocab: Any, token: int) -> bool:
    """Whether llguidance counts ``token`` as special (named in grammars as ``<name>``,
    never matched by text): control tokens, and user-defined ones written ``<...>``."""
    attr = int(llama_cpp.llama_token_get_attr(vocab, token))
    if attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
        return True
    text = llama_cpp.llama_vocab_get_text(vocab, token) or b""
    user = attr & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    return bool(user) and text.startswith(b"<") and text.endswith(b">")
