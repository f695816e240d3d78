"""The Anthropic Messages dialect: ``/anthropic/v1/messages``, as Claude Code and the
official ``anthropic`` SDK speak it. Converts straight to core requests and from core
events; it shares nothing with the OpenAI dialect but the core's types."""
