"""From a validated chat request to the plan of its reply: the prompt, whether and how
long it reasons, the grammar that constrains the answer, and how calls are parsed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from deepwell.chat import grammar as grammars
from deepwell.chat.reasoning import history, template_variables, think_opening
from deepwell.chat.template import ChatTemplate
from deepwell.chat.toolcalls import ToolCallFormat, tool_format
from deepwell.core import thinking as rules
from deepwell.core.decoding import Plan, ThinkStep
from deepwell.core.tools import check_tools, strict_mode
from deepwell.core.types import GenerationRequest, Message, Sampling, Tool, ToolChoice
from deepwell.engine.base import Engine, EngineRequest
from deepwell.errors import InvalidRequest
from deepwell.models.registry import ResolvedModel
from deepwell.settings import BackingModel, Reasoning, Thinking


@dataclass(frozen=True, slots=True)
class Draft:
    """A reply planned up to its token budget, which needs the prompt's length."""

    prompt: tuple[int, ...]
    thinking: bool
    sampling: Sampling
    think: ThinkStep | None
    grammar: str | None
    tools: ToolCallFormat | None
    tool_names: frozenset[str] = frozenset()

    def plan(
        self, *, max_tokens: int, stop: tuple[str, ...], namespace: str, logprobs: int | None
    ) -> Plan:
        """The plan for ``max_tokens`` in all. The reasoning gets at most half of them,
        so that a small ``max_tokens`` still leaves the answer room."""
        think = self.think
        if think is not None:
            think = replace(think, budget=min(think.budget, max_tokens // 2))
        request = EngineRequest(
            prompt=self.prompt,
            max_tokens=max_tokens,
            sampling=self.sampling,
            stop=stop,
            namespace=namespace,
            grammar=self.grammar,
            logprobs=logprobs,
        )
        return Plan(request, think, self.tools, self.tool_names)


def draft(
    request: GenerationRequest,
    model: ResolvedModel,
    backing: BackingModel,
    thinking_rules: Thinking,
    template: ChatTemplate,
    engine: Engine,
) -> Draft:
    """Check what the request asks of thinking and tools, and render its prompt."""
    thinking = rules.thinking_on(request, model)
    check_tools(request.tools, request.tool_choice, beta=request.beta)
    spec = backing.reasoning
    budget = 0
    if thinking:
        rules.check_rules(request, thinking_rules)
        budget = rules.budget(request, spec, thinking_rules)
    choice = _choice(request)
    offered = request.tools if choice.mode != "none" else ()
    fmt = tool_format(backing.tool_format) if offered else None
    text, think = _prompt(request, template, spec, offered, thinking=thinking, budget=budget)
    return Draft(
        prompt=tuple(engine.tokenize(text, special=True)),
        thinking=thinking,
        sampling=_sampling(request.sampling, spec) if thinking else request.sampling,
        think=think,
        grammar=_grammar(request, choice, fmt),
        tools=fmt,
        tool_names=frozenset(tool.name for tool in offered),
    )


def _choice(request: GenerationRequest) -> ToolChoice:
    if request.tool_choice is not None:
        return request.tool_choice
    return ToolChoice("auto" if request.tools else "none")


def _sampling(client: Sampling, spec: Reasoning) -> Sampling:
    """Thinking mode's sampling: the client's parameters have no effect (its seed does)."""
    return Sampling(temperature=spec.temperature, top_p=spec.top_p, seed=client.seed)


def _prompt(
    request: GenerationRequest,
    template: ChatTemplate,
    spec: Reasoning,
    tools: Sequence[Tool],
    *,
    thinking: bool,
    budget: int,
) -> tuple[str, ThinkStep | None]:
    """The prompt text, ending where the reply begins, and the reasoning step if any."""
    messages = history(request.messages, spec, thinking=thinking)
    prefix = messages[-1] if messages and messages[-1].prefix else None
    body = messages[:-1] if prefix is not None else messages
    text = template.render(
        body,
        tools=[_tool_dict(tool) for tool in tools] or None,
        variables=template_variables(spec, thinking=thinking),
    )
    if not thinking or spec.style == "none":
        return text + _content(prefix), None
    opened = text + think_opening(text, spec)
    if prefix is not None:
        opened += prefix.reasoning_content or ""
    drop = tuple(m for m in (spec.open.strip(), spec.end.strip()) if m)
    think = ThinkStep(budget, spec.end, spec.close, spec.close_early, _content(prefix), drop)
    return opened, think


def _content(message: Message | None) -> str:
    return (message.content or "") if message is not None else ""


def _tool_dict(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = (
        dict(tool.parameters)
        if tool.parameters is not None
        else {"type": "object", "properties": {}}
    )
    return {"type": "function", "function": function}


def _grammar(
    request: GenerationRequest, choice: ToolChoice, fmt: ToolCallFormat | None
) -> str | None:
    """The answer's grammar: forced calls, strict calls after free text, or JSON."""
    strict = strict_mode(request.tools, beta=request.beta)
    if fmt is not None and choice.mode in ("required", "function"):
        chosen = [t for t in request.tools if choice.mode == "required" or t.name == choice.name]
        return _tool_grammar(chosen, fmt, strict=strict, free_text=False)
    if fmt is not None and strict:
        return _tool_grammar(request.tools, fmt, strict=True, free_text=True)
    if request.json_output:
        return grammars.JSON_OBJECT
    return None


def _tool_grammar(
    tools: Sequence[Tool], fmt: ToolCallFormat, *, strict: bool, free_text: bool
) -> str:
    try:
        if free_text:
            return grammars.check(grammars.text_or_tool_calls_grammar(tools, fmt))
        return grammars.check(grammars.tool_calls_grammar(tools, fmt, strict_schemas=strict))
    except grammars.SchemaError as exc:
        if strict:
            raise InvalidRequest(
                f"Invalid tools: a function's parameters cannot be enforced in strict mode ({exc})",
                param="tools",
            ) from exc
    loose = [replace(tool, parameters={"type": "object"}) for tool in tools]
    return grammars.tool_calls_grammar(loose, fmt, strict_schemas=False)
