"""Wire formats: the OpenAI-style chat API and the legacy completions format of the FIM
endpoint, as pydantic models converted to core requests, and core events encoded back into
response objects and stream chunks. Nothing here knows HTTP or the engine."""
