"""Public model ids, their aliases and retirement, mapped to backing models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from deepwell.errors import InvalidRequest, ModelNotFound
from deepwell.settings import PublicModel, Settings


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
        self._aliases = dict(settings.aliases)
        self._now = now
        for alias in self._aliases.values():
            if alias.target not in self._models:
                raise ValueError(f"alias target {alias.target!r} is not a configured model")

    def public_ids(self) -> list[str]:
        """The ids ``/models`` lists: current models, then aliases not yet retired."""
        now = self._now()
        live = [name for name, alias in self._aliases.items() if alias.retires_at > now]
        return [*self._models, *live]

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

    def backing_names(self) -> set[str]:
        return {spec.backing for spec in self._models.values()}
