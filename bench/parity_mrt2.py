"""Parity of jamgen's native MRT2 engine with the official ``magenta-rt`` package, without the real weights.

The package's own initialisers make parameters of the official layout at ``--shape`` (every constant
tensor re-drawn so it matters), they are written as the official safetensors file, and both engines
load that file and run the same conditioning (a prompt change half-way, random piano-roll frames)
from the same RNG key. Prints the per-level logit differences (float32 on both sides), how many
frames in a row have identical tokens, the SNR of the native codec's audio against the package's
for the same tokens, and the logit drift of bfloat16 weights and compute against float32.

    .venv/bin/python bench/parity_mrt2.py                        # reduced shape, ~1 min on 2 CPU cores
    .venv/bin/python bench/parity_mrt2.py --shape small          # the full mrt2_small shape (GPU, or a patient CPU)
    .venv/bin/python bench/parity_mrt2.py --write-test-checkpoint   # $MAGENTA_HOME/.../mrt2_test.safetensors for --model mrt2:test
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np


def conditioning(frames: int, seed: int) -> np.ndarray:
    from generator.mrt2.parity import random_conditioning

    return random_conditioning(frames, seed)


def bf16_drift(preset: str, path, cond: np.ndarray, seed: int) -> tuple[float, float, int]:
    """(max |logit| difference on frame 0, its max |logit|, frames with identical tokens) of bfloat16
    weights and compute against float32, same key."""
    import jax.numpy as jnp

    from generator.mrt2 import system
    from generator.mrt2.engine import key_data

    runs = []
    for dtype in (jnp.float32, jnp.bfloat16):
        engine = system.load_lm(preset, path, dtype=dtype, param_dtype=dtype)
        ids, logits = engine.run(key_data(seed), cond[:, None], 1.3, 40, keep_logits=True)
        runs.append((np.asarray(ids)[:, 0], np.asarray(logits, np.float32)[:, :, 0]))
    (ids32, lg32), (ids16, lg16) = runs
    same = np.all(ids32 == ids16, axis=1)
    return (float(np.abs(lg32[0] - lg16[0]).max()), float(np.abs(lg32[0]).max()),
            int(np.argmin(same)) if not same.all() else len(same))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="test", choices=("test", "small", "base"))
    ap.add_argument("--frames", type=int, default=60, help="frames stepped by both engines (>= 50)")
    ap.add_argument("--audio-frames", type=int, default=9, help="frames decoded by both codecs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", help="where to write the random checkpoint (default: a temporary file)")
    ap.add_argument("--reuse", action="store_true", help="reuse --checkpoint when it exists (minutes at full shape)")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 drift measurement")
    ap.add_argument("--write-test-checkpoint", action="store_true",
                    help="write $MAGENTA_HOME/magenta-rt-v2/checkpoints/mrt2_test.safetensors and exit")
    args = ap.parse_args()

    from generator.core.runtime import single_thread_cpu

    single_thread_cpu()
    import jax

    from generator.mrt2 import parity

    if args.write_test_checkpoint:
        from generator.mrt2 import system

        path = system.checkpoint_path("test")
        parity.official_checkpoint("test", path, seed=args.seed)
        print(f"wrote {path} (random weights, official layout, reduced shape); run with --model mrt2:test")
        return

    tmp = tempfile.TemporaryDirectory()
    path = pathlib.Path(args.checkpoint or pathlib.Path(tmp.name) / f"mrt2_{args.shape}.safetensors")
    t0 = time.perf_counter()
    if args.reuse and path.is_file():
        params = parity.read_checkpoint(path)
    else:
        params = parity.official_checkpoint(args.shape, path, seed=args.seed)
    print(f"shape {args.shape} on {jax.devices()[0].device_kind}: random official checkpoint "
          f"({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")

    cond = conditioning(args.frames, args.seed + 3)
    t0 = time.perf_counter()
    lm = parity.compare_lm(args.shape, path, params, cond, seed=args.seed + 5)
    print(f"LM, float32 both sides, {lm.frames} frames ({time.perf_counter() - t0:.1f} s):")
    print(f"  logits max |diff| {lm.logit_max_abs:.3g} (goal <= 1e-3); per level: "
          + " ".join(f"{d:.2g}" for d in lm.per_level_max_abs))
    print(f"  tokens identical for the first {lm.tokens_equal_frames} of {lm.frames} frames"
          f" ({'all' if lm.tokens_all_equal else 'NOT all'})")

    codes = np.random.default_rng(args.seed).integers(0, 1024, (args.audio_frames, 12))
    audio = parity.compare_audio(path, params, codes, block=3)
    print(f"codec, {audio.frames} frames (native 3 per call, package 1 per step): SNR {audio.snr_db:.1f} dB "
          f"(goal >= 60), max |diff| {audio.max_abs_diff:.3g}, peak {audio.peak:.3g}")

    if not args.no_bf16:
        diff, peak, same = bf16_drift(args.shape, path, cond, args.seed + 5)
        print(f"bfloat16 weights+compute vs float32 (native): frame-0 logits max |diff| {diff:.3g} "
              f"(max |logit| {peak:.3g}); tokens identical for the first {same} frames")


if __name__ == "__main__":
    main()
