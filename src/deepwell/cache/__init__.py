"""The context cache: prompt prefixes indexed in blocks, kept in RAM and on disk."""
