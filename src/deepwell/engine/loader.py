"""Building the engines a configuration asks for.

Each backing model names its engine (``BackingModel.engine``): the embedded llama.cpp
engine or remote servers. An engine's module is imported only when a backing model
chooses it, so a gateway in front of remote servers never loads llama.cpp's engine (a
token-in remote engine still reads the model's vocabulary with llama.cpp).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from deepwell.cache.prefixes import PrefixCache
from deepwell.engine.base import Engine
from deepwell.errors import ConfigurationError
from deepwell.models.sources import ensure_model_file
from deepwell.settings import BackingModel, RemoteEngine, Settings

log = logging.getLogger(__name__)


def load_engine(
    name: str,
    settings: Settings,
    *,
    progress: bool = True,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> Engine:
    """Make the backing model's file ready (assembling it on first use) and load its
    engine.

    ``on_fatal`` is called, on a worker thread, if the embedded engine fails and cannot
    rebuild itself (see ``LlamaCppEngine``); the engine is then useless for good.
    """
    backing = settings.backing_models.get(name)
    if backing is None:
        raise ConfigurationError(f"no backing model named {name!r} is configured")
    if isinstance(backing.engine, RemoteEngine):
        return _remote(name, backing, backing.engine, settings, progress=progress)
    return _embedded(name, backing, settings, progress=progress, on_fatal=on_fatal)


def _embedded(
    name: str,
    backing: BackingModel,
    settings: Settings,
    *,
    progress: bool,
    on_fatal: Callable[[BaseException], None] | None,
) -> Engine:
    from deepwell.engine.llamacpp.engine import LlamaCppEngine  # only when chosen

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


def _remote(
    name: str, backing: BackingModel, remote: RemoteEngine, settings: Settings, *, progress: bool
) -> Engine:
    """A remote engine: token-in over the model's vocabulary, read from its local file
    (never downloaded at run time unless its source says so), or pass-through chat."""
    if remote.api == "chat":
        from deepwell.engine.remote.chat import ChatEngine  # only when chosen

        log.info("%s: pass-through chat to %s", name, ", ".join(remote.urls))
        return ChatEngine(
            name,
            remote,
            context_length=backing.context_length,
            reasoning=backing.reasoning,
            block_tokens=settings.cache.block_tokens,
        )
    from deepwell.engine.constraints import Constraints
    from deepwell.engine.llamacpp.vocab import GgufVocabulary
    from deepwell.engine.remote.engine import RemoteEngine as Remote  # only when chosen

    path = ensure_model_file(name, backing, settings.models_dir, progress=progress)
    log.info("%s: %s at %s, vocabulary from %s", name, remote.api, ", ".join(remote.urls), path)
    vocabulary = GgufVocabulary(path)
    try:
        constraints = Constraints(vocabulary.llguidance_tokenizer())
        return Remote(
            name,
            vocabulary,
            constraints,
            remote,
            context_length=backing.context_length,
            block_tokens=settings.cache.block_tokens,
        )
    except BaseException:
        vocabulary.close()
        raise


def cache_fingerprint(path: Path, backing: BackingModel, settings: Settings) -> str:
    """What a saved KV state depends on: the model's bytes, llama.cpp, the KV layout.

    States saved under another fingerprint are never loaded.
    """
    from deepwell.engine.llamacpp.model import LLAMA_CPP_VERSION  # only for the embedded engine

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
