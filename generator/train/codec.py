"""Train jamgen's codec on the pre-rendered clip cache: ``python -m generator.train codec``.

Why two phases (``shared/research/codec-probe.md``): a codec trained with its quantizer from step 0
collapsed on CPU budgets (constant encoder output, decoder playing an average spectrum). So:

* ``--phase ae``: the continuous autoencoder (no quantizer). The periodic held-out eval prints the
  reconstruction distance and the *swap ratio* (distance when each item is decoded from another
  item's latents / distance from its own latents); a ratio well above 1 means the output depends on z.
* ``--phase rvq --init runs/codec/ae``: warm-start the RVQ codebooks with residual k-means on encoder
  outputs of the training cache, then train with EMA codebooks and quantizer dropout.

Each run directory holds ``codec.safetensors`` + ``opt.safetensors`` + ``state.json`` (resumable:
rerun the same command), ``metrics.jsonl`` and ``curve.png``. Pin to one core with ``taskset -c 0``.

    taskset -c 0 .venv/bin/python -m generator.data.codec_clips --minutes 30
    taskset -c 0 .venv/bin/python -m generator.train codec --phase ae --out runs/codec/ae --steps 3000 --minutes 15
    taskset -c 0 .venv/bin/python -m generator.train codec --phase rvq --init runs/codec/ae \\
        --out runs/codec/rvq --steps 6000 --minutes 25
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib

if len(os.sched_getaffinity(0)) == 1:  # pinned with taskset: one XLA thread, no oversubscription
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from generator.core import checkpoint  # noqa: E402
from generator.train import rundir  # noqa: E402
from generator.audio.codec import Codec  # noqa: E402
from generator.audio.config import preset  # noqa: E402
from generator.train import codec_ae_step, codec_step, make_optimizer, spectral_distance  # noqa: E402

FRAME = 1920


# ---- data -------------------------------------------------------------------------------------
class Crops:
    """Random crops [B, frames*1920, 2] float32 from an int16 clip cache, with gain and L/R swap."""

    def __init__(self, clips: np.ndarray, batch: int, frames: int, seed: int):
        self.clips, self.batch, self.n = clips, batch, frames * FRAME
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> np.ndarray:
        r = self.rng
        idx = r.integers(0, len(self.clips), self.batch)
        start = r.integers(0, self.clips.shape[1] - self.n, self.batch)
        x = np.stack([self.clips[i, s:s + self.n] for i, s in zip(idx, start)]).astype(np.float32) / 32768
        x *= (10 ** (r.uniform(-6, 3, self.batch) / 20)).astype(np.float32)[:, None, None]
        swap = r.random(self.batch) < 0.5
        x[swap] = x[swap, :, ::-1]
        return x


def heldout_batch(directory, items: int = 8, seconds: float = 2.0) -> np.ndarray:
    """A fixed held-out batch [items, seconds*48000, 2]: the first ``seconds`` after 1 s of spaced clips."""
    h = np.load(pathlib.Path(directory) / "heldout.npy", mmap_mode="r")
    pick = np.linspace(0, len(h) - 1, min(items, len(h))).astype(int)
    n = int(seconds * 25) * FRAME
    return np.stack([h[i, 48000:48000 + n] for i in pick]).astype(np.float32) / 32768


# ---- evaluation -------------------------------------------------------------------------------
@functools.partial(nnx.jit, static_argnums=2)
def _recon(codec: Codec, audio, levels: int):
    z = codec.embed(audio)
    if levels:
        _, z, _ = codec.rvq.quantize(z, levels)
    state = codec.init_decoder_state(audio.shape[0])
    spec, _ = codec.latents_to_spec(z, state["conv"])
    out, _ = codec.spec_to_audio(spec, state["tail"])
    swapped_spec, _ = codec.latents_to_spec(jnp.roll(z, 1, axis=0), state["conv"])
    swapped, _ = codec.spec_to_audio(swapped_spec, state["tail"])
    return out, swapped


def evaluate(codec: Codec, audio: np.ndarray, levels: int = 0) -> dict:
    """Held-out MR-STFT distance of the reconstruction, and the swap ratio (>1: output depends on z)."""
    a = jnp.asarray(audio)
    out, swapped = _recon(codec, a, levels)
    own = float(spectral_distance(out[:, FRAME:], a[:, FRAME:]))
    other = float(spectral_distance(swapped[:, FRAME:], a[:, FRAME:]))
    rms = float(jnp.sqrt((out[:, FRAME:] ** 2).mean() / (a[:, FRAME:] ** 2).mean()))
    return {"mrstft": own, "swap_ratio": other / max(own, 1e-9), "rms_ratio": rms}


def code_usage(codec: Codec, audio: np.ndarray) -> list[int]:
    codes = nnx.jit(lambda c, x: c.encode(x))(codec, jnp.asarray(audio))
    c = np.asarray(codes).reshape(-1, codes.shape[-1])
    return [int(len(np.unique(c[:, i]))) for i in range(c.shape[1])]


# ---- RVQ warm start ---------------------------------------------------------------------------
@jax.jit
def _assign(x, book):
    d = (book ** 2).sum(-1)[None] - 2 * x @ book.T
    return jnp.argmin(d, axis=-1)


def kmeans_init(codec: Codec, vectors: np.ndarray, vectors_per_step: int, iters: int = 12, seed: int = 0):
    """Residual k-means on encoder outputs -> codebooks, with EMA stats scaled to one train step."""
    from tqdm import tqdm

    rvq = codec.rvq
    rng = np.random.default_rng(seed)
    res = jnp.asarray(vectors)
    books, counts = [], []
    for _level in tqdm(range(rvq.levels), desc="k-means init", unit="level"):
        book = res[rng.choice(len(res), rvq.size, replace=len(res) < rvq.size)]
        for _ in range(iters):
            a = _assign(res, book)
            cnt = jnp.zeros(rvq.size).at[a].add(1.0)
            sm = jnp.zeros_like(book).at[a].add(res)
            fresh = res[rng.integers(0, len(res), rvq.size)]
            book = jnp.where(cnt[:, None] > 0, sm / jnp.maximum(cnt, 1)[:, None], fresh)
        a = _assign(res, book)
        cnt = jnp.zeros(rvq.size).at[a].add(1.0)
        res = res - book[a]
        books.append(book)
        counts.append(cnt / len(vectors) * vectors_per_step)
    book = jnp.stack(books)
    cnt = jnp.maximum(jnp.stack(counts), 1e-2)
    rvq.codebook[...] = book
    rvq.counts[...] = cnt
    rvq.sums[...] = book * cnt[..., None]
    return float((res ** 2).sum(-1).mean() / (jnp.asarray(vectors) ** 2).sum(-1).mean())


# ---- checkpoints ------------------------------------------------------------------------------
def plot(out: pathlib.Path):
    with rundir.curve(out) as (tr, ev, ax):
        if tr:
            s = np.array([r["step"] for r in tr])
            for key in ("loss", "complex", "mrstft", "sc"):
                ax[0].plot(*rundir.moving_average(s, [r.get(key, np.nan) for r in tr]), label=key)
            ax[0].set_title("train (moving avg)")
            ax[0].legend()
        if ev:
            s = [r["step"] for r in ev]
            ax[1].plot(s, [r["mrstft"] for r in ev], "o-", label="held-out MR-STFT")
            if "mrstft_2" in ev[-1]:
                ax[1].plot(s, [r.get("mrstft_2", np.nan) for r in ev], "s-", label="2 levels")
            ax2 = ax[1].twinx()
            ax2.plot(s, [r["swap_ratio"] for r in ev], "r--", label="swap ratio")
            ax2.set_ylabel("swap ratio", color="r")
            ax[1].set_title("held-out eval")
            ax[1].legend(loc="upper center")


# ---- export into a full system checkpoint -------------------------------------------------------
def export(run: str, out: str, preset_name: str = "tiny", blocks: int = 10) -> dict:
    """Write ``out`` as a jamgen checkpoint: the trained codec of ``run`` plus the preset's seeded LM and
    style model; then load it with :func:`generator.audio.system.load` and stream ``blocks`` 200 ms blocks."""
    from safetensors.numpy import load_file

    from generator.core.contract import GenerationControls
    from generator.audio.system import System, load

    system = System(preset(preset_name))
    checkpoint.assign(system.codec, load_file(str(pathlib.Path(run) / "codec.safetensors")), run)
    system.save(out)
    loaded = load(out)
    state = loaded.init_state(0)
    audio = []
    for _ in range(blocks):
        a, state = loaded.generate(state, GenerationControls(), 5)
        audio.append(a)
    audio = np.concatenate(audio)
    return {"samples": int(len(audio)), "finite": bool(np.isfinite(audio).all()),
            "rms": float(np.sqrt((audio ** 2).mean())), "peak": float(np.abs(audio).max())}


# ---- main -------------------------------------------------------------------------------------
def main(argv=None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export"]:
        e = argparse.ArgumentParser(prog="python -m generator.train codec export",
                                    description="trained codec + seeded LM/style -> loadable system checkpoint")
        e.add_argument("run")
        e.add_argument("out")
        e.add_argument("--preset", default="tiny")
        ea = e.parse_args(argv[1:])
        print(json.dumps(export(ea.run, ea.out, ea.preset)))
        return 0
    p = argparse.ArgumentParser(prog="python -m generator.train codec", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", choices=["ae", "rvq"], required=True)
    p.add_argument("--out", required=True, help="run directory (resumed when it has state.json)")
    p.add_argument("--init", default=None, help="run directory whose codec weights start this run")
    p.add_argument("--data", default="runs/codec_data")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=3000, help="length of the LR schedule")
    p.add_argument("--minutes", type=float, default=None, help="stop (with a checkpoint) after this wall time")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=12, help="crop length in 40 ms token frames")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ckpt-every", type=float, default=120.0, help="seconds between checkpoints")
    p.add_argument("--eval-every", type=int, default=100, help="steps between held-out evals")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = preset(a.preset).codec
    codec = Codec(cfg, rngs=nnx.Rngs(a.seed))
    sched = optax.warmup_cosine_decay_schedule(0.0, a.lr, a.warmup, max(a.steps, a.warmup + 1), a.lr * 0.05)
    opt = make_optimizer(codec, lr=sched)
    train = np.load(pathlib.Path(a.data) / "train.npy")
    held = heldout_batch(a.data)
    crops = Crops(train, a.batch, a.frames, a.seed)
    state = {"step": 0, "elapsed": 0.0, "phase": a.phase, "preset": a.preset, "args": vars(a)}
    if (out / "state.json").is_file():
        state = json.loads((out / "state.json").read_text())
        rundir.load_module(out / "codec.safetensors", codec)
        rundir.load_module(out / "opt.safetensors", opt)
        crops.rng = np.random.default_rng([a.seed, state["step"]])
        print(f"resumed {out} at step {state['step']}")
    else:
        if a.init:
            rundir.load_module(pathlib.Path(a.init) / "codec.safetensors", codec)
            print(f"codec weights from {a.init}")
        if a.phase == "rvq":
            enc = nnx.jit(lambda c, x: c.embed(x))
            pick = np.random.default_rng(a.seed).permutation(len(train))[:96]
            vecs = np.concatenate([np.asarray(enc(codec, jnp.asarray(
                train[i:i + 1].astype(np.float32) / 32768)))[0] for i in pick])
            rel = kmeans_init(codec, vecs, a.batch * a.frames, seed=a.seed)
            print(f"k-means init on {len(vecs)} latents: relative residual after all levels {rel:.4f}")
    step_fn = codec_ae_step if a.phase == "ae" else codec_step
    key = jax.random.fold_in(jax.random.PRNGKey(a.seed), state["step"])
    def held_out() -> dict:
        row = evaluate(codec, held, 0 if a.phase == "ae" else cfg.levels)
        if a.phase == "rvq":
            row["mrstft_2"] = evaluate(codec, held, 2)["mrstft"]
            row["mrstft_4"] = evaluate(codec, held, 4)["mrstft"]
            row["codes_used"] = code_usage(codec, held)
        return row

    def one_step() -> dict:
        nonlocal key
        key, sub = jax.random.split(key)
        loss, m = step_fn(codec, opt, jnp.asarray(crops()), sub)
        return {"loss": loss, "lr": sched(state["step"] + 1), **m}

    modules = {"codec": codec, "opt": opt}
    with open(out / "metrics.jsonl", "a") as metrics_f:
        rundir.train_loop(out, state, modules, steps=a.steps, minutes=a.minutes, eval_every=a.eval_every,
                          ckpt_every=a.ckpt_every, step=one_step, evaluate=held_out, plot=plot,
                          metrics_file=metrics_f, desc=f"codec {a.phase}",
                          postfix=lambda r: {"loss": f"{r['loss']:.3f}", "mr": f"{r['mrstft']:.3f}",
                                             "cx": f"{r['complex']:.3f}"})
    return rundir.finish(out, modules, state, plot)


if __name__ == "__main__":
    raise SystemExit(main())
