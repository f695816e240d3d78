"""The embedded engine: llama.cpp in-process through llama-cpp-python's low-level bindings,
many sequences batched on one scheduler thread, which keeps finished prompts' KV in slots and
saves and restores prefixes through the context cache (``deepwell.cache``)."""
