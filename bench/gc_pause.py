"""How long Python's garbage collector stops every thread, with a model loaded, and what freezing start-up saves.

The daemon freezes the objects start-up made (``bridge.gc_guard``): this bench shows why. It loads a model, plays
``--blocks`` low-latency blocks with a control change every 8 blocks (so the groove model re-samples, as under a
performer), and times a full collection before and after ``gc.freeze()``, and again after as many blocks more.

    .venv/bin/python bench/gc_pause.py [--model groove] [--blocks 3000]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import generator  # noqa: E402
from bridge import gc_guard  # noqa: E402
from generator.core.contract import GenerationControls  # noqa: E402


def full_collection_ms(repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        gc.collect()
        best = min(best, 1000 * (time.perf_counter() - t0))
    return best


def play(gen, state, controls, blocks: int, frames: int):
    for i in range(blocks):
        _, state = gen.generate(state, dataclasses.replace(controls, temperature=0.8 + 0.01 * ((i // 8) % 40)), frames)
    return state


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="groove")
    p.add_argument("--blocks", type=int, default=3000)
    p.add_argument("--frames", type=int, default=1, help="frames per block (1 = the low setting's 40 ms)")
    a = p.parse_args()
    gen = generator.load(a.model)
    gen.warmup()
    controls = GenerationControls(prompts=(("upbeat funk groove with bass and drums", 1.0),))
    state = play(gen, gen.init_state(0), controls, 200, a.frames)
    tracked = len(gc.get_objects())
    before = full_collection_ms()
    frozen, _ = gc_guard.freeze_start_up()
    after = full_collection_ms()
    state = play(gen, state, controls, a.blocks, a.frames)
    later_tracked = len(gc.get_objects())
    later = full_collection_ms()
    print(f"model {a.model}: {tracked} objects tracked after start-up; a full collection takes {before:.1f} ms")
    print(f"after gc.freeze() ({frozen} frozen): {after:.2f} ms; after {a.blocks} more blocks "
          f"({later_tracked} tracked): {later:.2f} ms (best of 3 each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
