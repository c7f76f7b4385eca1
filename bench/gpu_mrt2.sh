#!/usr/bin/env bash
# One command for an NVIDIA machine: MRT2 parity at the full mrt2_small shape, then mrt2:small and
# mrt2:base (jamgen's engine, bf16) against the package's step under the adapter, per frame and per block.
# Uses the official checkpoints under $MAGENTA_HOME when present, else random weights in the official layout.
#   bench/gpu_mrt2.sh            (needs CUDA JAX in .venv: .venv/bin/pip install -U 'jax[cuda12]')
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_FLAGS="${XLA_FLAGS:---xla_gpu_enable_latency_hiding_scheduler=true}"
"$PY" -c "import jax; d = jax.devices()[0]; assert d.platform == 'gpu', f'JAX sees {d}, not a GPU'; print('device:', d.device_kind)"
"$PY" bench/parity_mrt2.py --shape small --frames 50
for shape in small base; do
  "$PY" bench/bench_generator.py --mrt2 "$shape" --random --block 2 --blocks 200 2>/dev/null | tr '\r' '\n' | grep -v 'it/s\|s/it'
done
# Variants of the native engine on mrt2_small: float32, and the loop unrolling (default "levels" on a GPU).
for env in JAMGEN_MRT2_DTYPE=float32 JAMGEN_MRT2_UNROLL=none JAMGEN_MRT2_UNROLL=all; do
  echo "== $env"
  env "$env" "$PY" bench/bench_generator.py --mrt2 small --random --no-adapter --block 2 --blocks 200 2>/dev/null \
    | tr '\r' '\n' | grep -v 'it/s\|s/it'
done
