"""Building the engines a configuration asks for."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from deepwell.cache.prefixes import PrefixCache
from deepwell.engine.base import Engine
from deepwell.engine.llamacpp.engine import LlamaCppEngine
from deepwell.engine.llamacpp.model import LLAMA_CPP_VERSION
from deepwell.errors import ConfigurationError
from deepwell.models.sources import ensure_model_file
from deepwell.settings import BackingModel, Settings

log = logging.getLogger(__name__)


def load_engine(
    name: str,
    settings: Settings,
    *,
    progress: bool = True,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> Engine:
    """Make the backing model's file ready (assembling it on first use) and load it.

    ``on_fatal`` is called, on a worker thread, if the engine fails and cannot rebuild
    itself (see ``LlamaCppEngine``); the engine is then useless for good.
    """
    backing = settings.backing_models.get(name)
    if backing is None:
        raise ConfigurationError(f"no backing model named {name!r} is configured")
    path = ensure_model_file(name, backing, settings.models_dir, progress=progress)
    log.info("loading %s from %s", name, path)
    cache = None
    if settings.cache.enabled:
        cache = PrefixCache(
            settings.cache,
            cache_fingerprint(path, backing, settings),
            settings.data_dir / "cache" / name,
        )
    return LlamaCppEngine(
        name,
        path,
        settings.engine,
        context_length=backing.context_length,
        cache=cache,
        on_fatal=on_fatal,
    )


def cache_fingerprint(path: Path, backing: BackingModel, settings: Settings) -> str:
    """What a saved KV state depends on: the model's bytes, llama.cpp, the KV layout.

    States saved under another fingerprint are never loaded.
    """
    model = backing.source.sha256
    if model is None:
        stat = path.stat()
        model = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    parts = {
        "model": model,
        "llama_cpp": LLAMA_CPP_VERSION,
        "n_ctx": settings.engine.n_ctx,
        "block_tokens": settings.cache.block_tokens,
        "kv_type": "f16",
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
