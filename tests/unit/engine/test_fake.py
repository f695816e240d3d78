"""FakeEngine honours the engine contract the layers above rely on."""

from __future__ import annotations

from contextlib import aclosing

from deepwell.engine.base import Admitted, Done, EngineEvent, EngineRequest, Piece
from deepwell.engine.fake import TEMPLATE, FakeEngine

PROMPT = (1, 2, 3, 4, 5)


async def events(engine: FakeEngine, **kwargs: object) -> list[EngineEvent]:
    request = EngineRequest(prompt=PROMPT, **kwargs)  # type: ignore[arg-type]
    return [event async for event in engine.generate(request)]


def text_of(items: list[EngineEvent]) -> str:
    return "".join(e.text for e in items if isinstance(e, Piece))


async def test_whole_reply_then_done() -> None:
    items = await events(FakeEngine("Hi there"), max_tokens=100)
    assert text_of(items) == "Hi there"
    assert items[0] == Admitted(0)
    assert items[-1] == Done("stop", 5, 8)
    assert all(isinstance(e, Piece) and e.tokens == 1 for e in items[1:-1])


async def test_max_tokens_cuts_with_length() -> None:
    items = await events(FakeEngine("Hi there"), max_tokens=3)
    assert text_of(items) == "Hi "
    assert items[-1] == Done("length", 5, 3)


async def test_max_tokens_equal_to_reply_is_a_stop() -> None:
    items = await events(FakeEngine("abc"), max_tokens=3)
    assert items[-1] == Done("stop", 5, 3)


async def test_stop_string() -> None:
    items = await events(FakeEngine("one, two, three"), max_tokens=100, stop=(", t",))
    assert text_of(items) == "one"
    assert items[-1] == Done("stop", 5, 6, stop_sequence=", t")


async def test_partial_stop_at_the_end_is_flushed() -> None:
    items = await events(FakeEngine("abc<"), max_tokens=100, stop=("<end>",))
    assert text_of(items) == "abc<"
    assert items[-1] == Done("stop", 5, 4)


async def test_tokenize_is_one_token_per_character() -> None:
    assert FakeEngine().tokenize("añ😀", special=True) == [ord("a"), ord("ñ"), ord("😀")]


async def test_info_and_health() -> None:
    engine = FakeEngine(context_length=77)
    assert engine.info.chat_template == TEMPLATE
    assert engine.info.context_length == 77
    health = await engine.health()
    assert health.state == "ready"
    assert health.sequences_busy == 0
    assert health.kv_total == 77


async def test_active_counts_running_generations_and_closing_frees_them() -> None:
    engine = FakeEngine("abcdef")
    async with aclosing(engine.generate(EngineRequest(prompt=PROMPT, max_tokens=10))) as stream:
        assert await anext(stream) == Admitted(0)
        assert await anext(stream) == Piece("a", tokens=1)
        assert engine.active == 1
        assert (await engine.health()).sequences_busy == 1
    assert engine.active == 0


async def test_a_piece_per_token_and_the_held_tail_last() -> None:
    items = await events(FakeEngine("ab<"), max_tokens=100, stop=("<end>",))
    assert items[1:] == [
        Piece("a", tokens=1),
        Piece("b", tokens=1),
        Piece("", tokens=1),
        Piece("<"),
        Done("stop", 5, 3),
    ]
