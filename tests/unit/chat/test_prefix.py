"""Chat prefix completion in the template: the prompt ends inside the assistant turn."""

from __future__ import annotations

import pytest

from deepwell.chat.template import ChatTemplate, without_marks
from deepwell.errors import InvalidRequest
from deepwell.vocabulary import Message

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
USER = Message("user", "Write quick sort.")


def render(*messages: Message, add_generation_prompt: bool = True) -> str:
    template = ChatTemplate(TEMPLATE)
    return without_marks(template.render(messages, add_generation_prompt=add_generation_prompt))


def test_prefix_content_ends_the_prompt() -> None:
    text = render(USER, Message("assistant", "```python\n", prefix=True))
    assert text == (
        "<|im_start|>user\nWrite quick sort.<|im_end|>\n<|im_start|>assistant\n```python\n"
    )


def test_prefix_without_content_is_the_generation_prompt() -> None:
    assert render(USER, Message("assistant", None, prefix=True)) == render(USER)


def test_prefix_opens_the_turn_even_without_a_generation_prompt() -> None:
    text = render(USER, Message("assistant", "x", prefix=True), add_generation_prompt=False)
    assert text.endswith("<|im_start|>assistant\nx")


def test_prefix_alone() -> None:
    assert render(Message("assistant", "def ", prefix=True)) == "<|im_start|>assistant\ndef "


def test_a_last_assistant_turn_without_prefix_is_closed() -> None:
    text = render(USER, Message("assistant", "Sure."))
    assert text.endswith("Sure.<|im_end|>\n<|im_start|>assistant\n")


def test_prefix_alone_where_the_template_needs_a_first_message_is_a_clear_400() -> None:
    template = ChatTemplate(
        "{{ messages[0].role }}{% for m in messages %}{{ m.content }}{% endfor %}"
    )
    with pytest.raises(InvalidRequest, match="needs a message before") as raised:
        template.render([Message("assistant", "def ", prefix=True)])
    assert raised.value.param == "messages"
