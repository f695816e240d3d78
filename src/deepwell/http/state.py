"""What route handlers reach through the app: the services built by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fastapi import Request

from deepwell.core.auth import Caller
from deepwell.core.completion import CompletionService
from deepwell.core.service import GenerationService
from deepwell.engine.base import Engine
from deepwell.models.registry import ModelRegistry


class KeyLookup(Protocol):
    async def authenticate(self, key: str) -> Caller | None: ...


@dataclass(slots=True)
class Services:
    registry: ModelRegistry
    generation: GenerationService
    engines: dict[str, Engine]
    keys: KeyLookup
    completion: CompletionService


def services(request: Request) -> Services:
    state: Services = request.app.state.services
    return state
