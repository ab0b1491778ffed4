"""Synthesis: the worker that owns the engine (and the GPU) and the configured voices."""
