"""A GGUF model loaded through llama.cpp: weights, vocabulary and metadata.

The model is read-only once loaded; tokenizing and detokenizing are safe from any
thread while the scheduler thread decodes.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import llama_cpp

from deepwell.errors import ConfigurationError

# The llama-cpp-python release in use; saved KV states depend on it.
LLAMA_CPP_VERSION: str = llama_cpp.__version__

# llama.cpp's log lines go to this logger, one line each and truncated; it logs a lot
# at load time, so only its warnings and errors pass unless the logger is set lower.
llama_log = logging.getLogger("deepwell.llama_cpp")
LOG_LINE_LIMIT = 300
# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error (5 continues the previous line).
_LOG_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _to_logging(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    python_level = _LOG_LEVELS.get(level, logging.DEBUG)
    if not llama_log.isEnabledFor(python_level):
        return
    line = text.decode("utf-8", errors="replace").strip()
    if line:
        cut = line if len(line) <= LOG_LINE_LIMIT else line[:LOG_LINE_LIMIT] + "..."
        llama_log.log(python_level, "%s", cut)


def init_backend() -> None:
    """Initialise llama.cpp once per process (idempotent in llama.cpp), its logs sent
    to ``logging``."""
    if llama_log.level == logging.NOTSET:
        llama_log.setLevel(logging.WARNING)
    llama_cpp.llama_log_set(_to_logging, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()


class LlamaModel:
    """Owns a ``llama_model`` pointer; call ``close`` to free it."""

    def __init__(self, path: Path) -> None:
        init_backend()
        params = llama_cpp.llama_model_default_params()
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ConfigurationError(f"llama.cpp could not load the model file {path}")
        self.ptr = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.path = path

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None

    def chat_template(self) -> str:
        template = llama_cpp.llama_model_chat_template(self.ptr, None)
        return template.decode("utf-8") if template else ""

    def tokenize(self, text: str, *, special: bool, add_bos: bool = False) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(
            self.vocab, data, len(data), tokens, capacity, add_bos, special
        )
        if n < 0:
            capacity = -n
            tokens = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(
                self.vocab, data, len(data), tokens, capacity, add_bos, special
            )
        return list(tokens[:n])

    def piece(self, token: int, *, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def token_text(self, token: int) -> str:
        """The text of a (possibly special) token, as templates spell it."""
        if token < 0:
            return ""
        return self.piece(token, special=True).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    @property
    def n_vocab(self) -> int:
        return int(llama_cpp.llama_vocab_n_tokens(self.vocab))

    @property
    def bos(self) -> int:
        return int(llama_cpp.llama_vocab_bos(self.vocab))

    @property
    def eos(self) -> int:
        return int(llama_cpp.llama_vocab_eos(self.vocab))
