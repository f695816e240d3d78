"""From a validated chat request to the plan of its reply: the prompt, whether and how
long it reasons, the constraint on the answer, and how calls are parsed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from deepwell.chat import grammar as grammars
from deepwell.chat.reasoning import history, template_variables, think_opening
from deepwell.chat.template import ChatTemplate, client_text, split_client_text
from deepwell.chat.toolcalls import ToolCallFormat, tool_format
from deepwell.core import thinking as rules
from deepwell.core.decoding import Plan, ThinkStep
from deepwell.core.tools import check_tools, strict_mode
from deepwell.core.types import GenerationRequest
from deepwell.engine.base import Constraint, ConstraintError, Engine, EngineRequest
from deepwell.errors import InvalidRequest
from deepwell.models.registry import ResolvedModel
from deepwell.settings import BackingModel, Reasoning, Thinking
from deepwell.vocabulary import Message, Sampling, Tool, ToolChoice


@dataclass(frozen=True, slots=True)
class Draft:
    """A reply planned up to its token budget, which needs the prompt's length."""

    prompt: tuple[int, ...]
    thinking: bool
    sampling: Sampling
    think: ThinkStep | None
    constraint: Constraint | None
    tools: ToolCallFormat | None
    tool_names: frozenset[str] = frozenset()
    # At most one call (``parallel_tool_calls: false``, or a named function).
    single_call: bool = False

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
            constraint=self.constraint,
            logprobs=logprobs,
        )
        # Calls held to their format by a grammar stream their arguments as they come.
        stream_calls = self.constraint is not None and self.constraint.kind == "lark"
        return Plan(
            request,
            think,
            self.tools,
            self.tool_names,
            stream_calls=stream_calls,
            single_call=self.single_call,
        )


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
    # ``tool_choice: none`` keeps the tools in the prompt (a tool loop's prompt stays one
    # prefix, and the model still knows what it called) and forbids calls instead.
    markup = tool_format(backing.tool_format) if request.tools else None
    fmt = markup if choice.mode != "none" else None
    text, think = _prompt(request, template, spec, request.tools, thinking=thinking, budget=budget)
    return Draft(
        prompt=prompt_tokens(engine, text),
        thinking=thinking,
        sampling=_sampling(request.sampling, spec) if thinking else request.sampling,
        think=think,
        constraint=_constraint(request, choice, markup, engine),
        tools=fmt,
        tool_names=frozenset(tool.name for tool in request.tools) if fmt else frozenset(),
        single_call=not request.parallel_tool_calls or choice.mode == "function",
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
        return text + client_text(_content(prefix)), None
    opened = text + think_opening(text, spec)
    if prefix is not None:
        opened += client_text(prefix.reasoning_content or "")
    drop = tuple(m for m in (spec.open.strip(), spec.end.strip()) if m)
    think = ThinkStep(budget, spec.end, spec.close, spec.close_early, _content(prefix), drop)
    return opened, think


def prompt_tokens(engine: Engine, text: str) -> tuple[int, ...]:
    """The rendered prompt's tokens: the template's markup with special tokens, the
    client's text without (so it cannot forge a control token)."""
    tokens: list[int] = []
    for part, from_client in split_client_text(text):
        tokens += engine.tokenize(part, special=not from_client)
    return tuple(tokens)


def _content(message: Message | None) -> str:
    return (message.content or "") if message is not None else ""


def _tool_dict(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = dict(grammars.arguments_schema(tool))
    return {"type": "function", "function": function}


def _constraint(
    request: GenerationRequest, choice: ToolChoice, fmt: ToolCallFormat | None, engine: Engine
) -> Constraint | None:
    """What the answer must match: forced calls, strict calls after free text, JSON, or
    text without calls (``tool_choice: none``). ``fmt`` is the format of the calls the
    tools in the prompt would be made in. Each is checked by the engine here, so a
    constraint it cannot enforce is a 400 before anything runs."""
    strict = strict_mode(request.tools, beta=request.beta)
    if fmt is not None and choice.mode == "function":
        chosen = [t for t in request.tools if t.name == choice.name]
        return _calls(chosen, fmt, engine, strict=strict, free_text=False, parallel=False)
    if fmt is not None and choice.mode == "required":
        parallel = request.parallel_tool_calls
        return _calls(request.tools, fmt, engine, strict=strict, free_text=False, parallel=parallel)
    if fmt is not None and strict and choice.mode == "auto":
        parallel = request.parallel_tool_calls
        return _calls(request.tools, fmt, engine, strict=True, free_text=True, parallel=parallel)
    if request.response_schema is not None:
        return _checked(grammars.json_schema(request.response_schema), engine, "response_format")
    if request.json_output:
        return grammars.JSON_OBJECT
    if fmt is not None and choice.mode == "none":
        return _text_only(request, fmt, engine)
    return None


def _text_only(
    request: GenerationRequest, fmt: ToolCallFormat, engine: Engine
) -> Constraint | None:
    """``tool_choice: none``: text in which no call can begin. An engine that cannot
    enforce it (a remote one without Lark grammars) runs unconstrained: the answer is
    not parsed for calls, so what the model writes is text either way."""
    names = [tool.name for tool in request.tools]
    text = grammars.text_only(fmt, _special_markers(fmt, engine), names)
    try:
        engine.check_constraint(text)
    except ConstraintError:
        return None
    return text


def _calls(
    tools: Sequence[Tool],
    fmt: ToolCallFormat,
    engine: Engine,
    *,
    strict: bool,
    free_text: bool,
    parallel: bool,
) -> Constraint:
    """Calls to ``tools`` (one, unless ``parallel``), each tool's arguments held to its
    schema. A schema the engine cannot enforce is a 400 in strict mode; otherwise those
    arguments may be any JSON object. A named function is called once."""
    schemas = [_arguments(tool, engine, strict=strict) for tool in tools]
    build = grammars.text_or_tool_calls if free_text else grammars.tool_calls
    constraint = build(
        tools,
        schemas,
        fmt,
        specials=_special_markers(fmt, engine),
        parallel=parallel,
    )
    return _checked(constraint, engine, "tools")


def _arguments(tool: Tool, engine: Engine, *, strict: bool) -> Mapping[str, Any]:
    schema = grammars.arguments_schema(tool)
    try:
        engine.check_constraint(grammars.json_schema(schema))
    except ConstraintError as exc:
        if strict:
            raise InvalidRequest(
                f"Invalid tools: the parameters of function `{tool.name}` cannot be "
                f"enforced in strict mode ({exc})",
                param="tools",
            ) from exc
        return grammars.ANY_OBJECT
    return schema


def _checked(constraint: Constraint, engine: Engine, param: str) -> Constraint:
    try:
        engine.check_constraint(constraint)
    except ConstraintError as exc:
        raise InvalidRequest(f"Invalid {param}: {exc}", param=param) from exc
    return constraint


def _special_markers(fmt: ToolCallFormat, engine: Engine) -> frozenset[str]:
    """The format's markers that are single special tokens of the engine's model."""
    return frozenset(marker for marker in fmt.markers if engine.special_token(marker))
