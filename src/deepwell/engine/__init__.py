"""Running a model: the ``Engine`` protocol (token ids in, text pieces out), the embedded
llama.cpp engine, a scripted fake for tests, the text of generated tokens (UTF-8, stop
strings) and the loader that builds the engines a configuration asks for."""
