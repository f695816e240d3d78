"""deepwell.chat."""
