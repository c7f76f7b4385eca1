"""Train the Depthformer LM on codec tokens of rendered clips: ``python -m generator.train lm``.

Why these stages, in one run directory (each is skipped when its output already exists):

1. ``codes_<split>.npy`` then ``tokens.npz``: every clip of the clip caches (``generator.data.codec_clips``)
   encoded by the trained codec (``--codec``, a codec run directory) into ``codes`` [clips, frames, levels],
   plus the clip's style tokens from the trained style model (``--style``): ``audio_style`` [clips, S] from
   the clip's audio embedding (what Magenta RT trains on) and ``text_style`` [clips, P, S] from its caption and
   paraphrases (-1 rows where a clip has fewer). Tokenising once keeps the train step pure LM work.
2. Training: random windows of ``--frames`` frames; each item's style is its audio tokens or, with
   ``--text-prob``, the tokens of one of its texts, so the text prompts used at inference are in the
   training distribution even where the style model's text and audio towers disagree; the model's own
   ``cond_dropout`` masks the style of some items so classifier-free guidance works.
   Held-out evals log cross-entropy per RVQ level with the clip's style and with the style masked;
   their difference (``style_gain``) says how much the style tokens tell the LM. ``--unconditional``
   trains with every style masked, so the LM can start on the codec tokens while the style model is
   still training; the same run then resumes with styles.
3. ``export``: the codec, style model and LM together as a jamgen checkpoint (float16 on disk)::

    python -m generator.train lm export --codec runs/codec/rvq2 --style runs/style --lm runs/lm \\
        --out generator/checkpoints/tiny

Pin to cores with ``taskset``; the run resumes when re-run with the same ``--out``.
"""

from __future__ import annotations

import argparse
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

from generator.audio import checkpoint  # noqa: E402
from generator.audio.config import preset  # noqa: E402
from generator.audio.lm import Depthformer  # noqa: E402
from generator.train import lm_step, make_optimizer, rundir  # noqa: E402

SR = 48_000
FRAME = 1920
MAX_TEXTS = 4


# ---- stage 1: tokens ------------------------------------------------------------------------------
def _load_part(module, run_dir, name):
    path = pathlib.Path(run_dir) / f"{name}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: train the {name} first (jamgen train {name})")
    rundir.load_module(path, module)
    return module


def load_codec(run_dir, preset_name="tiny"):
    from generator.audio.codec import Codec

    return _load_part(Codec(preset(preset_name).codec, rngs=nnx.Rngs(0)), run_dir, "codec")


def load_style(run_dir, preset_name="tiny"):
    from generator.audio.style import StyleModel

    return _load_part(StyleModel(preset(preset_name).style, rngs=nnx.Rngs(0)), run_dir, "style")


def _metas(directory, split):
    path = pathlib.Path(directory) / f"{split}.meta.jsonl"
    return [json.loads(line) for line in open(path)]


def encode_codes(data_dirs, split, codec, levels, batch=4) -> np.ndarray:
    """Codec tokens [clips, frames, levels] uint16 of every clip of ``split`` in ``data_dirs``."""
    from tqdm import tqdm

    enc = nnx.jit(lambda c, x: c.encode(x, levels))
    codes = []
    for d in data_dirs:
        clips = np.load(pathlib.Path(d) / f"{split}.npy", mmap_mode="r")
        n = clips.shape[1] // FRAME * FRAME
        for i in tqdm(range(0, len(clips), batch), desc=f"codec tokens {d} {split}", unit="batch"):
            x = np.asarray(clips[i:i + batch, :n], np.float32) / 32768
            codes.append(np.asarray(enc(codec, jnp.asarray(x))).astype(np.uint16))
    return np.concatenate(codes)


def style_tokens(data_dirs, split, style, style_levels, text_max_len=64, batch=4) -> dict:
    """Style tokens of every clip: from its audio [clips, S] and its texts [clips, MAX_TEXTS, S]."""
    from tqdm import tqdm

    from generator.audio.style import to_mono_16k
    from generator.core.text_encoder import TextEncoder

    emb_audio = nnx.jit(lambda s, x: s.embed_audio(x))
    emb_text = nnx.jit(lambda s, v: s.embed_text(v))
    tok = nnx.jit(lambda s, v: s.tokenize(v, style_levels))
    text_encoder = TextEncoder(text_max_len)
    audio_style, text_style, captions = [], [], []
    for d in data_dirs:
        clips = np.load(pathlib.Path(d) / f"{split}.npy", mmap_mode="r")
        metas = _metas(d, split)
        for i in tqdm(range(0, len(metas), batch), desc=f"style tokens {d} {split}", unit="batch"):
            x = np.asarray(clips[i:i + batch], np.float32) / 32768
            mono = np.stack([to_mono_16k(a) for a in x])
            audio_style.append(np.asarray(tok(style, emb_audio(style, jnp.asarray(mono)))))
            for m in metas[i:i + batch]:
                texts = ([m["caption"]] + list(m.get("paraphrases") or []))[:MAX_TEXTS]
                vecs = tok(style, emb_text(style, jnp.asarray(text_encoder(texts))))
                rows = np.full((MAX_TEXTS, style_levels), -1, np.int32)
                rows[:len(texts)] = np.asarray(vecs)
                text_style.append(rows)
                captions.append(m["caption"])
    return {"audio_style": np.concatenate(audio_style).astype(np.int32), "text_style": np.stack(text_style),
            "captions": np.asarray(captions)}


def prepare_tokens(a, cfg, out: pathlib.Path, codes_only: bool = False) -> bool:
    """Stage 1 (see module docstring); codec tokens first (``codes_<split>.npy``), so they can be made
    while the style model still trains. Returns True when ``tokens.npz`` and ``tokens_heldout.npz`` exist."""
    for split in ("heldout", "train"):
        path = out / f"codes_{split}.npy"
        if not path.is_file():
            codes = encode_codes(a.data, split, load_codec(a.codec, a.preset), cfg.lm.levels)
            np.save(out / f"codes_{split}.tmp.npy", codes)
            os.replace(out / f"codes_{split}.tmp.npy", path)
    if codes_only:
        return False
    for split, name in (("heldout", "tokens_heldout.npz"), ("train", "tokens.npz")):
        if not (out / name).is_file():
            t = style_tokens(a.data, split, load_style(a.style, a.preset), cfg.lm.style_levels,
                             cfg.style.text_max_len)
            t["codes"] = np.load(out / f"codes_{split}.npy")
            np.savez(out / "tokens.tmp.npz", **t)
            os.replace(out / "tokens.tmp.npz", out / name)
    return True


# ---- stage 2: training -----------------------------------------------------------------------------
class Windows:
    """Random training windows: codes [B, T, L] int32 and per-frame style [B, T, S] int32."""

    def __init__(self, tokens, batch, frames, text_prob, seed):
        self.t, self.batch, self.frames, self.text_prob = tokens, batch, frames, text_prob
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        r, t = self.rng, self.t
        idx = r.integers(0, len(t["codes"]), self.batch)
        start = r.integers(0, t["codes"].shape[1] - self.frames + 1, self.batch)
        codes = np.stack([t["codes"][i, s:s + self.frames] for i, s in zip(idx, start)]).astype(np.int32)
        style = t["audio_style"][idx].copy()
        for b, i in enumerate(idx):
            rows = t["text_style"][i]
            rows = rows[rows[:, 0] >= 0]
            if len(rows) and r.random() < self.text_prob:
                style[b] = rows[r.integers(len(rows))]
        return codes, np.broadcast_to(style[:, None], (self.batch, self.frames, style.shape[-1])).copy()


@nnx.jit
def _nll(lm, codes, style):
    logp = jax.nn.log_softmax(lm.logits(codes, style), axis=-1)
    return -jnp.take_along_axis(logp, codes[..., None], axis=-1)[..., 0].mean(axis=(0, 1))


def heldout_windows(tokens, frames, count=24, seed=1):
    r = np.random.default_rng(seed)
    n = len(tokens["codes"])
    idx = np.linspace(0, n - 1, min(count, n)).astype(int)
    start = r.integers(0, tokens["codes"].shape[1] - frames + 1, len(idx))
    codes = np.stack([tokens["codes"][i, s:s + frames] for i, s in zip(idx, start)]).astype(np.int32)
    style = np.broadcast_to(tokens["audio_style"][idx][:, None], codes.shape[:2] + (
        tokens["audio_style"].shape[-1],)).astype(np.int32)
    return jnp.asarray(codes), jnp.asarray(style)


def evaluate(lm, held, chunk=8):
    """Held-out cross-entropy per level (nats) with the clip's style and with the style masked."""
    codes, style = held
    masked = jnp.full_like(style, lm.cfg.codebook_size)
    cond = np.mean([np.asarray(_nll(lm, codes[i:i + chunk], style[i:i + chunk]))
                    for i in range(0, len(codes), chunk)], axis=0)
    unc = np.mean([np.asarray(_nll(lm, codes[i:i + chunk], masked[i:i + chunk]))
                   for i in range(0, len(codes), chunk)], axis=0)
    return {"nll": float(cond.mean()), "nll_per_level": [round(float(v), 4) for v in cond],
            "nll_uncond": float(unc.mean()), "style_gain": float(unc.mean() - cond.mean())}


def _unconditional(codes, lm_cfg) -> dict:
    """Token arrays with every style masked: pre-training before the style model exists."""
    n = len(codes)
    return {"codes": codes, "audio_style": np.full((n, lm_cfg.style_levels), lm_cfg.codebook_size, np.int32),
            "text_style": np.full((n, MAX_TEXTS, lm_cfg.style_levels), -1, np.int32)}


def plot(out: pathlib.Path):
    with rundir.curve(out) as (tr, ev, ax):
        if tr:
            s = np.array([r["step"] for r in tr])
            ax[0].plot(*rundir.moving_average(s, [r["loss"] for r in tr]), label="train NLL (moving avg)")
            ax[0].legend()
        if ev:
            s = [r["step"] for r in ev]
            ax[1].plot(s, [r["nll"] for r in ev], "o-", label="held-out NLL, clip style")
            ax[1].plot(s, [r["nll_uncond"] for r in ev], "s--", label="held-out NLL, style masked")
            per = np.array([r["nll_per_level"] for r in ev])
            ax[1].plot(s, per[:, 0], ":", label="level 1")
            ax[1].plot(s, per[:, -1], ":", label=f"level {per.shape[1]}")
            ax[1].set_ylabel("nats / token")
            ax[1].legend(fontsize=7)


def train(a) -> int:
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = preset(a.preset)
    if a.unconditional:
        prepare_tokens(a, cfg, out, codes_only=True)
        tokens, held_tokens = (_unconditional(np.load(out / f"codes_{s}.npy"), cfg.lm)
                               for s in ("train", "heldout"))
    elif not prepare_tokens(a, cfg, out, a.codes_only):
        print(f"codec tokens written to {out}; rerun without --codes-only once the style model is trained")
        return 0
    else:
        tokens = dict(np.load(out / "tokens.npz"))
        held_tokens = dict(np.load(out / "tokens_heldout.npz"))
    print(f"{len(tokens['codes'])} train clips, {len(held_tokens['codes'])} held-out clips, "
          f"{tokens['codes'].shape[1]} frames each")
    lm = Depthformer(cfg.lm, rngs=nnx.Rngs(a.seed))
    sched = optax.warmup_cosine_decay_schedule(0.0, a.lr, a.warmup, max(a.steps, a.warmup + 1), a.lr * 0.05)
    opt = make_optimizer(lm, lr=sched)
    windows = Windows(tokens, a.batch, a.frames, a.text_prob, a.seed)
    held = heldout_windows(held_tokens, a.frames)
    state = {"step": 0, "elapsed": 0.0, "preset": a.preset, "args": vars(a)}
    if (out / "state.json").is_file() and (out / "lm.safetensors").is_file():
        state = json.loads((out / "state.json").read_text())
        state.setdefault("phases", []).append({"step": state["step"], "unconditional": a.unconditional})
        rundir.load_module(out / "lm.safetensors", lm)
        rundir.load_module(out / "opt.safetensors", opt)
        windows.rng = np.random.default_rng([a.seed, state["step"]])
        print(f"resumed {out} at step {state['step']}")
    key = jax.random.fold_in(jax.random.PRNGKey(a.seed), state["step"])
    def one_step() -> dict:
        nonlocal key
        codes, style = windows()
        key, sub = jax.random.split(key)
        loss, _ = lm_step(lm, opt, jnp.asarray(codes), jnp.asarray(style), sub)
        return {"loss": loss}

    modules = {"lm": lm, "opt": opt}
    with open(out / "metrics.jsonl", "a") as metrics_f:
        rundir.train_loop(out, state, modules, steps=a.steps, minutes=a.minutes or None, eval_every=a.eval_every,
                          ckpt_every=a.ckpt_every, step=one_step, evaluate=lambda: evaluate(lm, held), plot=plot,
                          metrics_file=metrics_f, desc="lm", postfix=lambda r: {"nll": f"{r['loss']:.3f}"})
    return rundir.finish(out, modules, state, plot)

# ---- stage 3: export ----------------------------------------------------------------------------
def measure_gain(codec, data_dir="runs/codec_data", items: int = 18, levels: int | None = None) -> float:
    """Make-up gain that brings the codec's decoded loudness back to its input's: 1 / median RMS
    ratio over held-out clips (a codec trained on spectral losses can come out a few dB quiet)."""
    held = np.load(pathlib.Path(data_dir) / "heldout.npy", mmap_mode="r")
    n = held.shape[1] // FRAME * FRAME
    rt = nnx.jit(lambda c, x: c.decode(c.encode(x, levels)))
    ratios = []
    for i in np.linspace(0, len(held) - 1, min(items, len(held))).astype(int):
        x = np.asarray(held[i:i + 1, :n], np.float32) / 32768
        y = np.asarray(rt(codec, jnp.asarray(x)))
        ratios.append(np.sqrt((y ** 2).mean()) / max(np.sqrt((x ** 2).mean()), 1e-6))
    return float(1.0 / np.median(ratios))


def export(codec_run, style_run, lm_run, out, preset_name="tiny", half=True, gain="auto",
           gain_data="runs/codec_data", guidance: float | None = None) -> pathlib.Path:
    """Write the three trained parts as one jamgen checkpoint directory and check that it loads.
    ``gain="auto"`` stores the codec's measured make-up gain (:func:`measure_gain`) in its config."""
    import dataclasses

    from generator.audio.system import System, load

    cfg = preset(preset_name)
    if gain == "auto":
        g = measure_gain(load_codec(codec_run, preset_name), gain_data, levels=cfg.lm.levels)
        print(f"codec make-up gain {g:.3f} ({20 * np.log10(g):+.1f} dB), measured on {gain_data}")
    else:
        g = float(gain)
    cfg = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, output_gain=round(g, 4)))
    if guidance is not None:  # the guidance that measured best (bench/quality_lm.py) becomes the default
        cfg = dataclasses.replace(cfg, control_defaults=(("guidance", float(guidance)),))
    system = System(cfg)
    _load_part(system.codec, codec_run, "codec")
    _load_part(system.style, style_run, "style")
    rundir.load_module(pathlib.Path(lm_run) / "lm.safetensors", system.lm)
    checkpoint.save(out, system.config, {"codec": system.codec, "lm": system.lm, "style": system.style},
                    half=half)
    load(str(out))  # digests, names, shapes
    return pathlib.Path(out)


def main(argv=None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"]:
        e = argparse.ArgumentParser(prog="jamgen train lm export",
                                    description="trained codec + style + LM -> one jamgen checkpoint")
        e.add_argument("--codec", required=True, help="codec run directory (codec.safetensors)")
        e.add_argument("--style", required=True, help="style run directory (style.safetensors)")
        e.add_argument("--lm", required=True, help="LM run directory (lm.safetensors)")
        e.add_argument("--out", required=True, help="checkpoint directory to write")
        e.add_argument("--preset", default="tiny")
        e.add_argument("--float32", action="store_true", help="store float32 (default: float16 on disk)")
        e.add_argument("--gain", default="auto",
                       help="codec make-up gain, or 'auto' to measure it on --gain-data's held-out clips")
        e.add_argument("--gain-data", default="runs/codec_data")
        e.add_argument("--guidance", type=float, default=None,
                       help="start-up guidance the checkpoint documents (the one bench/quality_lm.py measured best)")
        ea = e.parse_args(argv[1:])
        path = export(ea.codec, ea.style, ea.lm, ea.out, ea.preset, half=not ea.float32, gain=ea.gain,
                      gain_data=ea.gain_data, guidance=ea.guidance)
        size = sum(f.stat().st_size for f in path.iterdir())
        print(f"wrote {path} ({size / 2 ** 20:.1f} MiB)")
        return 0
    p = argparse.ArgumentParser(prog="jamgen train lm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/lm", help="run directory (resumed when it has state.json)")
    p.add_argument("--codec", default="runs/codec/rvq2", help="trained codec run directory")
    p.add_argument("--style", default="runs/style", help="trained style run directory")
    p.add_argument("--data", nargs="+", default=["runs/lm_data", "runs/codec_data"],
                   help="clip caches (python -m generator.data.codec_clips)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=6000, help="length of the LR schedule")
    p.add_argument("--minutes", type=float, default=None, help="stop (with a checkpoint) after this wall time")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=64, help="window length in 40 ms frames")
    p.add_argument("--text-prob", type=float, default=0.5,
                   help="probability that an item is conditioned on its text's style tokens, not its audio's")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ckpt-every", type=float, default=180.0, help="seconds between checkpoints")
    p.add_argument("--eval-every", type=int, default=200, help="steps between held-out evals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unconditional", action="store_true",
                   help="train with every style masked (needs only the codec); resume later without it")
    p.add_argument("--codes-only", action="store_true",
                   help="only make the codec tokens (e.g. while the style model is still training)")
    return train(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
