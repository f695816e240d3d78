"""Limits on what accounts may run at once (429) and on what the server queues (503)."""
