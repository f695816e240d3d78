"""deepwell: a self-hosted implementation of the DeepSeek API platform."""

__version__ = "0.1.0"
