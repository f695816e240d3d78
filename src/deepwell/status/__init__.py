"""What the public status page shows: engine states over time, restarts and overloads."""

from deepwell.status.board import Component, Incident, StatusBoard, StatusReport, Tee, watching

__all__ = ["Component", "Incident", "StatusBoard", "StatusReport", "Tee", "watching"]
