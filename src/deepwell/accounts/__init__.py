"""Accounts' API keys: shown once at creation, stored only as a SHA-256 hash, and checked
against the database on every request, so a revoked key is refused at once."""
