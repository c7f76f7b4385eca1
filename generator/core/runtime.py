"""The XLA runtime every JAX family shares: one persistent compile cache.

Why: compiling a model's hot path takes seconds to minutes on 2 CPU cores; the persistent cache
makes the second start of the daemon (and every test after the first) skip it. There is exactly one
cache directory, ``$JAX_COMPILATION_CACHE_DIR`` or else :data:`DEFAULT_CACHE_DIR`; scripts and the
systemd unit rely on this default rather than naming a path of their own.
"""

from __future__ import annotations

import os
import pathlib

DEFAULT_CACHE_DIR = pathlib.Path.home() / ".cache" / "jamgen" / "xla"


def compile_cache_dir() -> str:
    """Where compiled programs are kept: ``$JAX_COMPILATION_CACHE_DIR`` or ~/.cache/jamgen/xla."""
    return os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(DEFAULT_CACHE_DIR)


def enable_compile_cache() -> None:
    """Turn on JAX's persistent compilation cache (idempotent; a path set earlier wins)."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", compile_cache_dir())
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
