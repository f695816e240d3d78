"""The llguidance tokenizer of a llama.cpp vocabulary, for constraint masks."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import llguidance

_PIECE_BYTES = 16 * 1024


def vocabulary_tokenizer(vocab: Any) -> llguidance.LLTokenizer:
    """Build it once per model: it reads every token (about a second for 150k).

    Special tokens are marked as llguidance expects (a leading 0xFF byte), so grammars
    name them and text never matches them. A constraint that is complete allows every
    end-of-generation token of the model (Qwen ends a turn with ``<|im_end|>`` or
    ``<|endoftext|>``), as the scheduler ends at any of them.
    """
    n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
    buffer = ctypes.create_string_buffer(_PIECE_BYTES + 1)
    tokens: list[bytes] = []
    for token in range(n_vocab):
        length = llama_cpp.llama_token_to_piece(vocab, token, buffer, _PIECE_BYTES, 0, True)
        if length < 0:
            raise ValueError(f"token {token} is longer than {_PIECE_BYTES} bytes")
        piece = bytes(buffer.raw[:length])
        tokens.append(b"\xff" + piece if is_special(vocab, token) else piece)
    ends = [token for token in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, token)]
    tokenize = ctypes.cast(llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
    tokenizer: llguidance.LLTokenizer = llguidance.LLTokenizer.from_llamacpp(  # type: ignore[attr-defined]
        tokens=tokens, vocab_ptr=vocab, tokenize_fptr=tokenize, eos_token=ends or None
    )
    return tokenizer


def is_special(vocab: Any, token: int) -> bool:
    """Whether llguidance counts ``token`` as special (named in grammars as ``<name>``,
    never matched by text): control tokens, and user-defined ones written ``<...>``."""
    attr = int(llama_cpp.llama_vocab_get_attr(vocab, token))
    if attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
        return True
    text = llama_cpp.llama_vocab_get_text(vocab, token) or b""
    user = attr & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    return bool(user) and text.startswith(b"<") and text.endswith(b">")
