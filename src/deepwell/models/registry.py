"""Public model ids, their aliases and retirement, mapped to backing models."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from deepwell.errors import InvalidRequest, ModelNotFound
from deepwell.settings import BackingModel, PublicModel, Settings, Thinking

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A request's model after aliases: ``id`` is what responses echo."""

    id: str
    spec: PublicModel
    thinking: bool
    thinking_fixed: bool

    @property
    def backing(self) -> str:
        return self.spec.backing


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ModelRegistry:
    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = _utcnow) -> None:
        self._models = dict(settings.models)
        self._backing = dict(settings.backing_models)
        self.thinking: Thinking = settings.thinking
        self._aliases = dict(settings.aliases)
        self._now = now
        for name, alias in settings.aliases.items():
            if alias.target not in self._models:
                log.warning(
                    "alias %s is not served: its target %s is not configured", name, alias.target
                )
                del self._aliases[name]

    def public_ids(self) -> list[str]:
        """The ids of the current public models (aliases not included)."""
        return list(self._models)

    def listing(self) -> list[tuple[str, str]]:
        """``(id, owned_by)`` of every model ``/models`` lists: current models, then aliases
        not yet retired, each owned as its target."""
        now = self._now()
        models = [(name, spec.owned_by) for name, spec in self._models.items()]
        aliases = [
            (name, self._models[alias.target].owned_by)
            for name, alias in self._aliases.items()
            if alias.retires_at > now
        ]
        return models + aliases

    def resolve(self, name: str) -> ResolvedModel:
        """Resolve a client's model name; unknown names and retired aliases are 400s."""
        if name in self._models:
            spec = self._models[name]
            return ResolvedModel(name, spec, spec.thinking_default, thinking_fixed=False)
        alias = self._aliases.get(name)
        if alias is None:
            raise ModelNotFound()
        if alias.retires_at <= self._now():
            raise InvalidRequest(
                f"The model `{name}` was retired on {alias.retires_at:%Y-%m-%d %H:%M} UTC. "
                f"Please use `{alias.target}` instead.",
                param="model",
            )
        return ResolvedModel(
            alias.target, self._models[alias.target], alias.thinking, thinking_fixed=True
        )

    def backing_model(self, name: str) -> BackingModel:
        """What the backing model ``name`` can do (its defaults when it is not configured,
        as for engines that tests pass in)."""
        return self._backing.get(name) or BackingModel()

    def backing_names(self) -> set[str]:
        return {spec.backing for spec in self._models.values()}
