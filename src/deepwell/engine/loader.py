"""Building the engines a configuration asks for."""

from __future__ import annotations

import logging

from deepwell.engine.base import Engine
from deepwell.engine.llamacpp.engine import LlamaCppEngine
from deepwell.errors import ConfigurationError
from deepwell.models.sources import ensure_model_file
from deepwell.settings import Settings

log = logging.getLogger(__name__)


def load_engine(name: str, settings: Settings, *, progress: bool = True) -> Engine:
    """Make the backing model's file ready (assembling it on first use) and load it."""
    backing = settings.backing_models.get(name)
    if backing is None:
        raise ConfigurationError(f"no backing model named {name!r} is configured")
    path = ensure_model_file(name, backing, settings.models_dir, progress=progress)
    log.info("loading %s from %s", name, path)
    return LlamaCppEngine(name, path, settings.engine, context_length=backing.context_length)
