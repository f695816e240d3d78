"""Remote engines: the model runs on upstream servers, deepwell stays the platform.

``engine.RemoteEngine`` sends token ids (llama-server, vLLM, SGLang; ``apis``) and gets
token ids back; ``chat.ChatEngine`` is the pass-through mode for an upstream that only
speaks OpenAI chat. ``replicas`` routes each request to a replica by prefix affinity with
bounded load and keeps track of which replicas are up. See docs/scale-out.md.
"""
