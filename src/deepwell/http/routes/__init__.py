"""deepwell.http.routes."""
