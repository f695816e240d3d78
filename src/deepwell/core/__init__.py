"""deepwell.core."""
