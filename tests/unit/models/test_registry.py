"""ModelRegistry: current ids, legacy aliases and their retirement, thinking defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from deepwell.errors import InvalidRequest, ModelNotFound
from deepwell.models.registry import ModelRegistry
from deepwell.settings import DEFAULT_MODEL, LegacyAlias, Prices, PublicModel, Settings

RETIRES = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
BEFORE = RETIRES - timedelta(seconds=1)
AFTER = RETIRES + timedelta(seconds=1)

pytestmark = pytest.mark.usefixtures("clean_env")

PRICES = Prices(cache_hit_input=Decimal("1"), cache_miss_input=Decimal("2"), output=Decimal("3"))


def make_settings() -> Settings:
    return Settings(
        models={
            "fast": PublicModel(backing="small", thinking_default=False, prices=PRICES),
            "deep": PublicModel(backing="large", max_output=4096, prices=PRICES),
        },
        aliases={
            "old-chat": LegacyAlias(target="fast", thinking=False, retires_at=RETIRES),
            "old-reasoner": LegacyAlias(target="fast", thinking=True, retires_at=RETIRES),
        },
    )


def registry_at(moment: datetime) -> ModelRegistry:
    return ModelRegistry(make_settings(), now=lambda: moment)


def listed_ids(registry: ModelRegistry) -> list[str]:
    """The ids ``/models`` lists, in its order."""
    return [model_id for model_id, _ in registry.listing()]


def test_resolve_current_id() -> None:
    model = registry_at(BEFORE).resolve("deep")
    assert model.id == "deep"
    assert model.backing == "large"
    assert model.spec.max_output == 4096
    assert model.thinking is True
    assert model.thinking_fixed is False


def test_thinking_default_comes_from_the_model() -> None:
    model = registry_at(BEFORE).resolve("fast")
    assert model.thinking is False
    assert model.thinking_fixed is False
    assert model.backing == "small"


@pytest.mark.parametrize(("alias", "thinking"), [("old-chat", False), ("old-reasoner", True)])
def test_alias_before_retirement_resolves_to_target(alias: str, thinking: bool) -> None:
    model = registry_at(BEFORE).resolve(alias)
    assert model.id == "fast"
    assert model.backing == "small"
    assert model.thinking is thinking
    assert model.thinking_fixed is True


@pytest.mark.parametrize("moment", [RETIRES, AFTER])
def test_alias_at_and_after_retirement_is_a_400(moment: datetime) -> None:
    with pytest.raises(InvalidRequest) as caught:
        registry_at(moment).resolve("old-chat")
    error = caught.value
    assert not isinstance(error, ModelNotFound)
    assert error.status == 400
    assert error.param == "model"
    assert error.message == (
        "The model `old-chat` was retired on 2030-01-02 03:04 UTC. Please use `fast` instead."
    )


def test_current_ids_do_not_retire() -> None:
    assert registry_at(AFTER + timedelta(days=3650)).resolve("fast").id == "fast"


@pytest.mark.parametrize("name", ["nope", "", "FAST", "fast ", "small"])
def test_unknown_model(name: str) -> None:
    with pytest.raises(ModelNotFound) as caught:
        registry_at(BEFORE).resolve(name)
    error = caught.value
    assert error.message == "Model Not Exist"
    assert error.status == 400
    assert error.envelope() == {
        "error": {
            "message": "Model Not Exist",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request_error",
        }
    }


def test_listing_lists_models_then_live_aliases() -> None:
    assert listed_ids(registry_at(BEFORE)) == ["fast", "deep", "old-chat", "old-reasoner"]


@pytest.mark.parametrize("moment", [RETIRES, AFTER])
def test_listing_drops_retired_aliases(moment: datetime) -> None:
    assert listed_ids(registry_at(moment)) == ["fast", "deep"]


def test_now_is_read_on_every_call() -> None:
    clock = [BEFORE]
    registry = ModelRegistry(make_settings(), now=lambda: clock[0])
    assert "old-chat" in listed_ids(registry)
    assert registry.resolve("old-chat").id == "fast"
    clock[0] = AFTER
    assert "old-chat" not in listed_ids(registry)
    with pytest.raises(InvalidRequest):
        registry.resolve("old-chat")


def test_backing_names() -> None:
    assert registry_at(BEFORE).backing_names() == {"small", "large"}


def test_alias_to_unknown_target_is_not_served() -> None:
    settings = make_settings()
    settings.aliases["broken"] = LegacyAlias(target="missing", thinking=False, retires_at=RETIRES)
    registry = ModelRegistry(settings, now=lambda: BEFORE)
    assert "broken" not in listed_ids(registry)
    with pytest.raises(ModelNotFound):
        registry.resolve("broken")


def test_default_settings() -> None:
    registry = ModelRegistry(Settings(), now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    assert listed_ids(registry) == [
        "deepseek-v4-flash",
        "deepseek-v4-pro",
        "deepseek-chat",
        "deepseek-reasoner",
    ]
    assert registry.backing_names() == {DEFAULT_MODEL}
    chat = registry.resolve("deepseek-chat")
    reasoner = registry.resolve("deepseek-reasoner")
    assert (chat.id, chat.thinking) == ("deepseek-v4-flash", False)
    assert (reasoner.id, reasoner.thinking) == ("deepseek-v4-flash", True)
    assert registry.resolve("deepseek-v4-pro").thinking is True
    assert registry.resolve("deepseek-v4-pro").spec.max_output == 8192


def test_default_aliases_retire_on_2026_07_24() -> None:
    settings = Settings()
    moment = datetime(2026, 7, 24, 15, 59, tzinfo=UTC)
    assert "deepseek-chat" in listed_ids(
        ModelRegistry(settings, now=lambda: moment - timedelta(minutes=1))
    )
    retired = ModelRegistry(settings, now=lambda: moment)
    assert listed_ids(retired) == ["deepseek-v4-flash", "deepseek-v4-pro"]
    with pytest.raises(InvalidRequest, match="retired on 2026-07-24 15:59 UTC"):
        retired.resolve("deepseek-reasoner")
