"""deepwell.http."""
