"""The only layer that knows HTTP: the FastAPI routes, API-key authentication, request
bodies, server-sent events, disconnects, and the one place errors are rendered."""
