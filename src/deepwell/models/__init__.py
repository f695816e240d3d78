"""The model registry and the sources of model files."""
