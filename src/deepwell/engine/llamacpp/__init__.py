"""deepwell.engine.llamacpp."""
