"""deepwell.dialects."""
