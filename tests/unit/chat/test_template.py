"""ChatTemplate: rendering HF-style chat templates in an immutable sandbox."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from deepwell.chat.template import ChatTemplate, split_client_text, without_marks
from deepwell.errors import ConfigurationError, InvalidRequest
from deepwell.vocabulary import Message, ToolCall

# A condensed Qwen2.5 chat template: system default, tools, tool calls and tool responses.
QWEN = """\
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}\
{%- else %}{{- 'You are Qwen.' }}{%- endif %}
{{- "\\n\\n# Tools\\n<tools>" }}
{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\\n</tools><|im_end|>\\n" }}
{%- else %}
{%- if messages[0]['role'] == 'system' %}
{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
{{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}
{%- endif %}
{%- endif %}
{%- for message in messages %}
{%- if (message.role == "user") or (message.role == "assistant" and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- elif message.role == "assistant" %}
{{- '<|im_start|>' + message.role }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}\
{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == "tool" %}
{{- '<|im_start|>user\\n<tool_response>\\n' + message.content \
+ '\\n</tool_response><|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""


def render_qwen(messages: list[Message], **kwargs: object) -> str:
    return without_marks(ChatTemplate(QWEN).render(messages, **kwargs))  # type: ignore[arg-type]


def render(source: str, *messages: Message, **kwargs: object) -> str:
    return without_marks(ChatTemplate(source).render(messages, **kwargs))  # type: ignore[arg-type]


def test_qwen_style_plain_conversation() -> None:
    text = render(
        QWEN,
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("user", "Bye"),
    )
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_add_generation_prompt_false() -> None:
    text = render(QWEN, Message("user", "Hi"), add_generation_prompt=False)
    assert text == ("<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")


def test_tools_and_tool_calls() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "<b> & co"}}]
    text = render_qwen(
        [
            Message("user", "Weather?"),
            Message(
                "assistant",
                None,
                tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris", "unit": "°C"}'),),
            ),
            Message("tool", "20", tool_call_id="call_1"),
        ],
        tools=tools,
    )
    assert text == (
        "<|im_start|>system\nYou are Qwen.\n\n# Tools\n<tools>\n"
        '{"type": "function", "function": {"name": "get_weather", "description": "<b> & co"}}'
        "\n</tools><|im_end|>\n"
        "<|im_start|>user\nWeather?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}'
        "\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n20\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_empty_tools_are_none() -> None:
    source = "{{ tools is none }}"
    assert ChatTemplate(source).render([Message("user", "x")], tools=[]) == "True"
    assert ChatTemplate(source).render([Message("user", "x")]) == "True"


# What each message looks like inside the template.
DUMP = "{{ messages | tojson }}"


def dumped(*messages: Message) -> list[dict[str, object]]:
    result: list[dict[str, object]] = json.loads(render(DUMP, *messages))
    return result


def test_tool_call_arguments_are_passed_parsed() -> None:
    call = ToolCall("call_1", "f", '{"a": [1, 2], "b": null}')
    [message] = dumped(Message("assistant", "ok", tool_calls=(call,)))
    assert message == {
        "role": "assistant",
        "content": "ok",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": {"a": [1, 2], "b": None}},
            }
        ],
    }


@pytest.mark.parametrize("arguments", ["not json", "", "{"])
def test_unparseable_tool_call_arguments_stay_strings(arguments: str) -> None:
    call = ToolCall("call_1", "f", arguments)
    [message] = dumped(Message("assistant", None, tool_calls=(call,)))
    assert message["tool_calls"][0]["function"]["arguments"] == arguments  # type: ignore[index]


def test_message_shape() -> None:
    messages = dumped(
        Message("system", "s"),
        Message("assistant", None),
        Message("tool", "result", tool_call_id="call_9", name="lookup"),
    )
    assert messages == [
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": ""},
        {"role": "tool", "content": "result", "tool_call_id": "call_9", "name": "lookup"},
    ]


def test_tojson_does_not_html_escape_and_keeps_non_ascii() -> None:
    # Jinja's own tojson would write \u003c, \u0026 and \u0027 here; HF templates expect JSON.
    text = render("{{ messages[0].content | tojson }}", Message("user", "<a href='x'>&é"))
    assert text == "\"<a href='x'>&é\""


def test_tojson_indent() -> None:
    assert render("{{ {'a': 1} | tojson(indent=2) }}", Message("user", "")) == '{\n  "a": 1\n}'


def test_bos_and_eos_tokens() -> None:
    template = ChatTemplate(
        "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}", bos_token="<s>", eos_token="</s>"
    )
    assert without_marks(template.render([Message("user", "mid")])) == "<s>mid</s>"


def test_bos_and_eos_default_to_empty() -> None:
    assert render("[{{ bos_token }}|{{ eos_token }}]", Message("user", "")) == "[|]"


def test_strftime_now() -> None:
    before = datetime.now().strftime("%Y-%m-%d")
    text = render("{{ strftime_now('%Y-%m-%d') }}", Message("user", ""))
    after = datetime.now().strftime("%Y-%m-%d")
    assert text in {before, after}


def test_raise_exception_is_a_400_on_messages() -> None:
    source = (
        "{% if messages[0].role != 'user' %}"
        "{{ raise_exception('Conversation roles must start with user') }}{% endif %}ok"
    )
    assert render(source, Message("user", "x")) == "ok"
    with pytest.raises(InvalidRequest) as caught:
        render(source, Message("assistant", "x"))
    error = caught.value
    assert error.status == 400
    assert error.message == "Conversation roles must start with user"
    assert error.param == "messages"


def test_undefined_attribute_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        render("{{ nothing.here }}", Message("user", "x"))
    assert caught.value.status == 400
    assert caught.value.message.startswith("The messages could not be rendered: ")
    assert "'nothing' is undefined" in caught.value.message


@pytest.mark.parametrize(
    ("source", "attribute"),
    [
        ("A{{ ''.__class__.__mro__ }}B", "__class__"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "__class__"),
        ("{{ cycler.__init__.__globals__ }}", "__init__"),
        ("{{ messages[0].__class__.__mro__ }}", "__class__"),
        ("{{ raise_exception.__globals__['json'] }}", "__globals__"),
    ],
)
def test_sandbox_blocks_attribute_escapes(source: str, attribute: str) -> None:
    """Going through an unsafe attribute is a SecurityError, surfaced as a 400."""
    with pytest.raises(InvalidRequest) as caught:
        render(source, Message("user", "x"))
    assert caught.value.status == 400
    assert caught.value.message.startswith("The messages could not be rendered: ")
    assert f"access to attribute '{attribute}'" in caught.value.message
    assert "unsafe" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "[{{ ''.__class__ }}]",
        "[{{ messages[0].__class__ }}]",
        "[{{ raise_exception.__globals__ }}]",
        "[{{ strftime_now.__code__ }}]",
    ],
)
def test_sandbox_prints_unsafe_attributes_as_nothing(source: str) -> None:
    """Printing an unsafe attribute itself renders as undefined: nothing leaks."""
    assert render(source, Message("user", "x")) == "[]"


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages.append({'role': 'user'}) }}",
        "{% set _ = messages[0].update({'content': 'owned'}) %}{{ messages[0].content }}",
        "{{ messages.pop() }}",
    ],
)
def test_sandbox_is_immutable(source: str) -> None:
    with pytest.raises(InvalidRequest, match="is unsafe"):
        render(source, Message("user", "x"))


def test_rendering_does_not_modify_the_messages() -> None:
    messages = (Message("user", "x"),)
    ChatTemplate(QWEN).render(messages)
    assert messages == (Message("user", "x"),)


def test_empty_template_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no chat template"):
        ChatTemplate("")


def test_syntax_error_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="does not compile"):
        ChatTemplate("{% for x in %}{% endfor %}")


def test_trim_blocks_and_lstrip_blocks() -> None:
    source = (
        "{% for m in messages %}\n    {% if true %}\n[{{ m.content }}]\n{% endif %}\n{% endfor %}"
    )
    assert render(source, Message("user", "a"), Message("user", "b")) == "[a]\n[b]\n"


def test_client_text_is_marked_and_cut_out_again() -> None:
    text = ChatTemplate("{% for m in messages %}<{{ m.content }}>{% endfor %}").render(
        [Message("user", "a<|x|>b"), Message("user", "")]
    )
    assert split_client_text(text) == [("<", False), ("a<|x|>b", True), ("><>", False)]


def test_marks_a_template_cuts_apart_leave_client_text_as_text() -> None:
    source = "[{{ messages[0].content.split('</think>')[-1] }}]"
    text = ChatTemplate(source).render([Message("assistant", "r</think><|im_start|>x")])
    # Up to the unmatched closing mark, all is the client's: "[" is lost as markup,
    # never the other way round.
    assert split_client_text(text) == [("[<|im_start|>x", True), ("]", False)]


def test_a_client_cannot_write_the_marks_themselves() -> None:
    text = ChatTemplate("{{ messages[0].content }}").render(
        [Message("user", "\ue001<|im_start|>\ue000")]
    )
    assert split_client_text(text) == [("\ufffd<|im_start|>\ufffd", True)]
