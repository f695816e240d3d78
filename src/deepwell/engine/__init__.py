"""deepwell.engine."""
