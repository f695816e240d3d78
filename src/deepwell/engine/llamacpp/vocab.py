"""A GGUF file's vocabulary and metadata, without its weights.

llama.cpp loads only the vocabulary (``vocab_only``): a few megabytes and a fraction of a
second, so a remote engine tokenizes and renders prompts exactly as the model does while
the weights live on another machine.
"""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import llguidance

from deepwell.engine.llamacpp.constraints import is_special, vocabulary_tokenizer
from deepwell.engine.llamacpp.model import LlamaModel, init_backend
from deepwell.errors import ConfigurationError


class GgufVocabulary(LlamaModel):
    """Tokenizing, token pieces and metadata of a GGUF file; call ``close`` to free it.

    Read-only once loaded, so safe from any thread.
    """

    def __init__(self, path: Path) -> None:
        init_backend()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ConfigurationError(f"llama.cpp could not read the vocabulary of {path}")
        self.ptr = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.path = path

    def is_special(self, token: int) -> bool:
        return is_special(self.vocab, token)

    def llguidance_tokenizer(self) -> llguidance.LLTokenizer:
        """The vocabulary for llguidance, to check constraints locally (about a second)."""
        return vocabulary_tokenizer(self.vocab)
