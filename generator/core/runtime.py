"""The XLA runtime every JAX family shares: one persistent compile cache, one CPU thread per computation.

Why one thread: a block of real-time generation is many tiny ops (a 192-wide transformer step); splitting each
across two cores gains nothing on an idle machine and costs a lot on a busy one, where every op waits for the
other core. Measured on 2 cores with a busy-loop process on one of them, one groove block of 40 ms in which
every block re-samples: p99 82 ms with XLA's default thread pool, 38 ms with one thread; ``tiny``'s 1-frame
blocks are as fast either way (p99 3.5-5.3 ms). :func:`single_thread_cpu` sets this unless ``XLA_FLAGS`` is
already set (a user's own flags win); :func:`generator.load` calls it before JAX starts its CPU backend.

Why one cache: compiling a model's hot path takes seconds to minutes on 2 CPU cores; the persistent cache
makes the second start of the daemon (and every test after the first) skip it. There is exactly one
cache directory, ``$JAX_COMPILATION_CACHE_DIR`` or else :data:`DEFAULT_CACHE_DIR`; scripts and the
systemd unit rely on this default rather than naming a path of their own.
"""

from __future__ import annotations

import functools
import os
import pathlib

DEFAULT_CACHE_DIR = pathlib.Path.home() / ".cache" / "jamgen" / "xla"
SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def single_thread_cpu() -> None:
    """One intra-op thread for XLA on CPU (see the module doc); no effect once JAX's backend has started, or when
    ``XLA_FLAGS`` is set."""
    os.environ.setdefault("XLA_FLAGS", SINGLE_THREAD_FLAGS)


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


@functools.cache
def event_sampler_options() -> dict:
    """XLA options for the event models' token samplers (``groove``, ``symbolic``): matrix products by XLA's own
    (Eigen) kernels instead of jaxlib 0.10's YNNPACK fusions.

    Why: a sampler step is a batch-2 matrix-vector product per layer (the CFG rows), where a YNNPACK fusion costs
    about twice Eigen's (~85 vs ~40 us for 192 x 768 on this 2-core EPYC, ``jax.profiler``); one 16-token chunk of
    the shipped groove model is 10-20 % faster without them, measured in one process with both compiled
    (``bench/sampler_speed.py``). The audio family's larger products are not (``tiny`` 5-15 % slower), so this is
    per function, not a global flag. Empty when this jaxlib does not know the option (a newer one may drop it).
    """
    import jax

    options = {"xla_cpu_experimental_ynn_fusion_type": ""}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except Exception:  # noqa: BLE001 - an unknown option: compile with the defaults
        return {}
    return options
