"""Chat generation: the request policy of a chat reply.

``prepare`` resolves and validates a request and renders its prompt; every error a
client can cause is raised there, before a response is committed. It is CPU work and
runs off the event loop (the gateway sees to that). ``run`` then drives the engine
and yields core events.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from deepwell.cache.blocks import cache_namespace
from deepwell.chat.template import ChatTemplate
from deepwell.core.checks import check_max_tokens, check_stop, fit_context
from deepwell.core.decoding import Plan, decode
from deepwell.core.events import Event
from deepwell.core.metering import Meter
from deepwell.core.planning import draft
from deepwell.core.types import GenerationRequest
from deepwell.engine.base import Engine
from deepwell.errors import InvalidRequest
from deepwell.models.registry import ModelRegistry, ResolvedModel
from deepwell.vocabulary import Caller, Message


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated request, ready to run."""

    model: ResolvedModel
    plan: Plan
    thinking: bool


class GenerationService:
    def __init__(
        self,
        registry: ModelRegistry,
        engines: Mapping[str, Engine],
        templates: Mapping[str, ChatTemplate],
        *,
        json_schema: bool = True,
    ) -> None:
        """``json_schema``: whether ``response_format`` ``json_schema`` is served (else the
        hosted API's 400)."""
        self._registry = registry
        self._engines = engines
        self._templates = templates
        self._json_schema = json_schema

    def resolve(self, name: str) -> ResolvedModel:
        """The public model a request names (a 400 for an unknown name)."""
        return self._registry.resolve(name)

    def prepare(self, request: GenerationRequest, caller: Caller) -> Prepared:
        model = self._registry.resolve(request.model)
        engine = self._engines[model.backing]
        if not request.clamp_max_tokens:
            check_max_tokens(request.max_tokens, model.spec.max_output)
        check_stop(request.stop)
        _check_prefix(request.messages, beta=request.beta)
        if request.response_schema is not None and not self._json_schema:
            raise InvalidRequest(
                "This response_format type is unavailable now", param="response_format"
            )
        reply = draft(
            request,
            model,
            self._registry.backing_model(model.backing),
            self._registry.thinking,
            self._templates[model.backing],
            engine,
        )
        context = engine.info.context_length
        asked = request.max_tokens
        if request.clamp_max_tokens and asked is not None:
            asked = min(asked, model.spec.max_output, max(1, context - len(reply.prompt)))
        max_tokens = fit_context(len(reply.prompt), asked, model.spec.max_output, context)
        namespace = cache_namespace(caller.account_id, request.user_id)
        plan = reply.plan(
            max_tokens=max_tokens, stop=request.stop, namespace=namespace, logprobs=request.logprobs
        )
        return Prepared(model=model, plan=plan, thinking=reply.thinking)

    async def run(self, prepared: Prepared, meter: Meter) -> AsyncGenerator[Event, None]:
        """The deltas, then Finished; ``meter`` counts the tokens as they come. Closing
        the iterator aborts the generation."""
        engine = self._engines[prepared.model.backing]
        async with aclosing(decode(engine, prepared.plan, meter)) as events:
            async for event in events:
                yield event


def _check_prefix(messages: Sequence[Message], *, beta: bool) -> None:
    """Chat prefix completion: only on ``/beta``, only a last assistant message."""
    for index, message in enumerate(messages):
        if not message.prefix:
            continue
        param = f"messages[{index}]"
        if index != len(messages) - 1 or message.role != "assistant":
            raise InvalidRequest(
                f"{param}: only the last message, an assistant message, may set `prefix`",
                param=param,
            )
        if message.tool_calls:
            raise InvalidRequest(f"{param}: a prefix message cannot carry tool_calls", param=param)
        if not beta:
            raise InvalidRequest(
                "Chat prefix completion (`prefix: true`) is a beta feature: use the base URL "
                "ending in /beta (POST /beta/chat/completions)",
                param=param,
            )
