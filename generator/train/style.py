"""Train jamgen's MusicCoCa-like style model: ``python -m generator.train style``.

What it does (see :mod:`generator.audio.style` for the model):

1. Caches, once, the 16 kHz mono log-mels of every clip of ``--data`` (``train.npy`` of each
   directory; by default ``runs/lm_data`` and ``runs/codec_data``, a directory without
   ``train.npy`` is skipped with a note) and of the held-out clips (``--heldout``), and the frozen
   MiniLM vectors of every caption and paraphrase, under ``--cache`` (default ``runs/style_cache``).
2. Trains the text projection and the audio tower with symmetric InfoNCE on random ``--crop``-second
   crops, one random text per clip and step (the caption or one of its paraphrases), batches without
   repeated captions; AdamW with warmup + cosine decay over ``--steps``.
3. Every ``--eval-every`` steps: held-out text->audio retrieval among the held-out clips (top-1/top-5
   for captions and for paraphrases), in ``metrics.jsonl`` and ``curve.png``.
4. At the end (``--steps`` reached or ``--minutes`` spent), fits the style RVQ codebooks with
   residual k-means on the learned embeddings of the train audio (whole clips and crops) *and* of
   the train texts, so that text prompts tokenise as well as audio does.

The run directory (``--out``, default ``runs/style``) holds ``style.safetensors`` (the whole
:class:`~generator.audio.style.StyleModel`, RVQ included), ``opt.safetensors``, ``state.json`` (rerun the
same command to resume), ``metrics.jsonl`` and ``curve.png``. Pin to one core with ``taskset``::

    taskset -c 1 .venv/bin/python -m generator.train style --out runs/style --minutes 25

Export: :func:`load_trained` ``(system, run_dir)`` assigns the trained weights to the ``style`` module
of a :class:`generator.audio.system.System` of the same preset (and refreshes its jitted style functions and
prompt caches); ``system.save(dir)`` then writes them into a checkpoint::

    from generator.audio.system import System
    from generator.audio.config import preset
    from generator.train.style import load_trained
    system = System(preset("tiny")); load_trained(system, "runs/style"); system.save("out/tiny")
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

from generator.audio.config import preset  # noqa: E402
from generator.train import rundir  # noqa: E402
from generator.audio.style import STYLE_RATE, HOP, StyleModel, info_nce, log_mel, mel_filters, to_mono_16k  # noqa: E402

MAX_LOG_TEMP = float(np.log(100.0))


# ---- data -------------------------------------------------------------------------------------
def read_meta(directory, split: str) -> list[dict]:
    with open(pathlib.Path(directory) / f"{split}.meta.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def texts_of(meta: dict) -> list[str]:
    """The caption first, then its paraphrases (none in older caches)."""
    return [meta["caption"]] + list(meta.get("paraphrases") or ())


def _cache_name(directory, split: str, n_mels: int) -> str:
    d = pathlib.Path(directory).resolve()
    return f"{d.parent.name}_{d.name}_{split}_mel{n_mels}.npy"


def mel_cache(directory, split: str, n_mels: int, cache: pathlib.Path, rate: int = 48_000) -> np.ndarray:
    """Log-mels [clips, frames, n_mels] float16 of ``directory/split.npy`` (computed once, cached).

    The cache is reused when it is newer than the clip file and has one row per clip."""
    from tqdm import tqdm

    src = pathlib.Path(directory) / f"{split}.npy"
    path = cache / _cache_name(directory, split, n_mels)
    clips = np.load(src, mmap_mode="r")
    if path.is_file() and path.stat().st_mtime >= src.stat().st_mtime:
        mel = np.load(path, mmap_mode="r")
        if len(mel) == len(clips):
            return np.asarray(mel)
    filters = jnp.asarray(mel_filters(n_mels))
    fn = jax.jit(lambda x: log_mel(x, filters))
    rows = []
    for i in tqdm(range(len(clips)), desc=f"log-mel {src}", unit="clip", leave=False):
        mono = to_mono_16k(np.asarray(clips[i], np.float32) / 32768, rate)
        rows.append(np.asarray(fn(jnp.asarray(mono[None])))[0].astype(np.float16))
    mel = np.stack(rows)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, mel)
    tmp.replace(path)
    return mel


def text_vectors(texts: list[str], cache: pathlib.Path, encoder=None) -> np.ndarray:
    """Frozen MiniLM vectors [len(texts), 384] (cached per text in ``cache/texts.npz``).

    ``encoder``: a :class:`~generator.core.text_encoder.TextEncoder`, a function that builds one (called
    only when some text is not cached yet), or None (build one when needed)."""
    path = cache / "texts.npz"
    known: dict[str, np.ndarray] = {}
    if path.is_file():
        z = np.load(path)
        known = dict(zip(z["texts"].tolist(), z["vecs"]))
    missing = sorted(set(texts) - set(known))
    if missing:
        from tqdm import tqdm

        if encoder is None:
            from generator.core.text_encoder import TextEncoder

            encoder = TextEncoder()
        elif not hasattr(encoder, "tokenizer"):
            encoder = encoder()  # a factory: build the encoder only when a text is not cached
        for i in tqdm(range(0, len(missing), 64), desc="MiniLM", unit="batch", leave=False):
            chunk = missing[i:i + 64]
            for t, v in zip(chunk, encoder(chunk)):
                known[t] = v
        cache.mkdir(parents=True, exist_ok=True)
        keys = sorted(known)
        tmp = cache / "texts.tmp.npz"
        np.savez(tmp, texts=np.array(keys), vecs=np.stack([known[k] for k in keys]).astype(np.float32))
        tmp.replace(path)
    return np.stack([known[t] for t in texts]).astype(np.float32)


class Pairs:
    """Training pairs: log-mels of all clips plus the MiniLM vectors of each clip's texts."""

    def __init__(self, mels: list[np.ndarray], metas: list[list[dict]], cache: pathlib.Path, encoder=None):
        self.mel = np.concatenate(mels)
        self.metas = [m for ms in metas for m in ms]
        self.captions = [m["caption"] for m in self.metas]
        texts = sorted({t for m in self.metas for t in texts_of(m)})
        self.vecs = text_vectors(texts, cache, encoder)
        index = {t: i for i, t in enumerate(texts)}
        self.text_ids = [[index[t] for t in texts_of(m)] for m in self.metas]

    def __len__(self):
        return len(self.mel)


class Batches:
    """Random (text vector, log-mel crop) batches: distinct captions per batch, random crop start,
    random text (caption or paraphrase) per clip."""

    def __init__(self, pairs: Pairs, batch: int, frames: int, seed: int):
        self.p, self.batch, self.frames = pairs, min(batch, len(pairs)), frames
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        r, p = self.rng, self.p
        picked, seen = [], set()
        for i in r.permutation(len(p)):
            if p.captions[i] not in seen:
                seen.add(p.captions[i])
                picked.append(i)
                if len(picked) == self.batch:
                    break
        start = r.integers(0, p.mel.shape[1] - self.frames + 1, len(picked))
        mel = np.stack([p.mel[i, s:s + self.frames] for i, s in zip(picked, start)]).astype(np.float32)
        vec = p.vecs[[r.choice(p.text_ids[i]) for i in picked]]
        return vec, mel


# ---- model steps ------------------------------------------------------------------------------
def mel_loss(style: StyleModel, vecs, mel):
    log_temp = jnp.minimum(style.log_temp[...], MAX_LOG_TEMP)
    return info_nce(style.embed_text(vecs), style.embed_mel(mel), log_temp)


@nnx.jit
def mel_step(style: StyleModel, optimizer: nnx.Optimizer, vecs, mel):
    loss, grads = nnx.value_and_grad(mel_loss, argnums=nnx.DiffState(0, nnx.Param))(style, vecs, mel)
    optimizer.update(style, grads)
    return loss


_embed_mel = nnx.jit(lambda m, x: m.embed_mel(x))
_embed_text = nnx.jit(lambda m, v: m.embed_text(v))


def embed_mels(style: StyleModel, mel: np.ndarray, chunk: int = 25) -> np.ndarray:
    """Unit audio embeddings [N, dim] of log-mels [N, T, n_mels] (fixed-size chunks: one compile)."""
    out = []
    for i in range(0, len(mel), chunk):
        x = np.asarray(mel[i:i + chunk], np.float32)
        n = len(x)
        if n < chunk:
            x = np.concatenate([x, np.repeat(x[-1:], chunk - n, 0)])
        out.append(np.asarray(_embed_mel(style, jnp.asarray(x)))[:n])
    return np.concatenate(out)


def embed_texts(style: StyleModel, vecs: np.ndarray) -> np.ndarray:
    return np.asarray(_embed_text(style, jnp.asarray(vecs, jnp.float32)))


def retrieval(text_emb: np.ndarray, audio_emb: np.ndarray, ks=(1, 5)) -> dict:
    """Text i should retrieve audio i: fraction with the true clip in the top k, for each k."""
    sim = text_emb @ audio_emb.T
    rank = (sim > sim[np.arange(len(sim)), np.arange(len(sim))][:, None]).sum(1)
    return {f"top{k}": float((rank < k).mean()) for k in ks}


class Heldout:
    """Held-out clips (whole 10 s log-mels) with their captions' and paraphrases' MiniLM vectors."""

    def __init__(self, directory, n_mels: int, cache: pathlib.Path, encoder=None):
        self.meta = read_meta(directory, "heldout")
        self.mel = mel_cache(directory, "heldout", n_mels, cache)
        self.captions = text_vectors([m["caption"] for m in self.meta], cache, encoder)
        n_para = min(len(m.get("paraphrases") or ()) for m in self.meta)
        self.paraphrases = [text_vectors([m["paraphrases"][j] for m in self.meta], cache, encoder)
                            for j in range(n_para)]

    def evaluate(self, style: StyleModel) -> dict:
        audio = embed_mels(style, self.mel)
        row = {f"cap_{k}": v for k, v in retrieval(embed_texts(style, self.captions), audio).items()}
        if self.paraphrases:
            res = [retrieval(embed_texts(style, p), audio) for p in self.paraphrases]
            row.update({f"para_{k}": float(np.mean([r[k] for r in res])) for k in res[0]})
        return row


# ---- RVQ fit ----------------------------------------------------------------------------------
def fit_rvq(style: StyleModel, pairs: Pairs, frames: int, seed: int = 0, crops: int = 2) -> dict:
    """Residual k-means of the style RVQ on train embeddings: whole clips, ``crops`` random crops per
    clip, and every train text (captions and paraphrases). Returns residual/usage statistics."""
    from generator.train.codec import kmeans_init

    rng = np.random.default_rng(seed)
    audio = [embed_mels(style, pairs.mel)]
    for _ in range(crops):
        start = rng.integers(0, pairs.mel.shape[1] - frames + 1, len(pairs))
        audio.append(embed_mels(style, np.stack([pairs.mel[i, s:s + frames] for i, s in enumerate(start)])))
    text = embed_texts(style, pairs.vecs)
    vectors = np.concatenate(audio + [text]).astype(np.float32)
    rel = kmeans_init(style, vectors, 1, seed=seed)
    stats = {"vectors": int(len(vectors)), "audio_vectors": int(sum(map(len, audio))),
             "text_vectors": int(len(text)), "relative_residual": rel}
    for n in sorted({1, 2, 6, style.rvq.levels}):
        if n > style.rvq.levels:
            continue
        codes, q, _ = style.rvq.quantize(jnp.asarray(vectors), n)
        q = np.asarray(q)
        stats[f"rel_residual_{n}"] = float(((vectors - q) ** 2).sum(-1).mean() / (vectors ** 2).sum(-1).mean())
        stats[f"codes_used_{n}"] = [int(len(np.unique(np.asarray(codes)[:, i]))) for i in range(n)][:3]
    return stats


# ---- checkpoints ------------------------------------------------------------------------------
def load_trained(system, run_dir) -> None:
    """Assign the trained style model of ``run_dir`` (``style.safetensors``) to ``system.style``.

    ``system`` is a :class:`generator.audio.system.System` whose preset has the run's style config (the
    shapes are checked). Its jitted style functions and prompt caches are rebuilt, so the next
    ``embed_style`` / ``style_tokens`` use the trained weights; ``system.save(dir)`` exports them."""
    run = pathlib.Path(run_dir)
    state_file = run / "state.json"
    if state_file.is_file():
        want = json.loads(state_file.read_text()).get("style_config")
        have = dict(vars(system.config.style))
        if want is not None and want != have:
            raise ValueError(f"{run}: trained style config {want} differs from the system's {have}")
    rundir.load_module(run / "style.safetensors", system.style)
    system._style_graph, system._style_params = nnx.split(system.style)
    system.__dict__.pop("_style_fns", None)
    system.bank = system.new_prompt_bank()


def plot(out: pathlib.Path):
    with rundir.curve(out) as (tr, ev, ax):
        if tr:
            s = np.array([r["step"] for r in tr])
            v = np.array([r["loss"] for r in tr])
            k = min(25, len(v))
            ax[0].plot(s, v, alpha=0.25, color="C0")
            ax[0].plot(*rundir.moving_average(s, v, k), color="C0", label="InfoNCE (avg)")
            ax[0].set_title("train loss")
            ax[0].legend()
        if ev:
            s = [r["step"] for r in ev]
            for key, style_ in (("cap_top1", "o-"), ("cap_top5", "o--"), ("para_top1", "s-"), ("para_top5", "s--")):
                if key in ev[-1]:
                    ax[1].plot(s, [100 * r.get(key, np.nan) for r in ev], style_, label=key)
            ax[1].axhline(100 / max(1, ev[-1].get("clips", 100)), color="gray", lw=0.8, label="chance top-1")
            ax[1].set_ylabel("%")
            ax[1].set_title("held-out text->audio retrieval")
            ax[1].legend(fontsize=7)


# ---- main -------------------------------------------------------------------------------------
def main(argv=None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m generator.train style", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/style", help="run directory (resumed when it has state.json)")
    p.add_argument("--data", nargs="+", default=["runs/lm_data", "runs/codec_data"],
                   help="clip caches whose train.npy + train.meta.jsonl are used (missing ones skipped)")
    p.add_argument("--heldout", default="runs/lm_data", help="cache whose heldout split is evaluated")
    p.add_argument("--cache", default="runs/style_cache", help="log-mel and MiniLM vector cache")
    p.add_argument("--rate", type=int, default=48_000, help="sample rate of the clip caches")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=1200, help="length of the LR schedule")
    p.add_argument("--minutes", type=float, default=None, help="stop (and fit the RVQ) after this wall time")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--crop", type=float, default=6.0, help="crop length in seconds")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--ckpt-every", type=float, default=120.0, help="seconds between checkpoints")
    p.add_argument("--eval-every", type=int, default=50, help="steps between held-out evals")
    p.add_argument("--no-rvq", action="store_true", help="skip the RVQ k-means fit at the end")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out, cache = pathlib.Path(a.out), pathlib.Path(a.cache)
    out.mkdir(parents=True, exist_ok=True)
    cfg = preset(a.preset).style
    style = StyleModel(cfg, rngs=nnx.Rngs(a.seed))
    sched = optax.warmup_cosine_decay_schedule(0.0, a.lr, a.warmup, max(a.steps, a.warmup + 1), a.lr * 0.05)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, b1=0.9, b2=0.98, weight_decay=a.weight_decay))
    opt = nnx.Optimizer(style, tx, wrt=nnx.Param)

    import functools

    from generator.core.text_encoder import TextEncoder

    @functools.cache
    def encoder():
        return TextEncoder(cfg.text_max_len)

    dirs = [d for d in a.data if (pathlib.Path(d) / "train.npy").is_file()]
    for d in sorted(set(a.data) - set(dirs)):
        print(f"note: {d}/train.npy not found; training without it")
    if not dirs:
        raise SystemExit("no training data: none of --data has train.npy")
    pairs = Pairs([mel_cache(d, "train", cfg.n_mels, cache, a.rate) for d in dirs],
                  [read_meta(d, "train") for d in dirs], cache, encoder)
    held = Heldout(a.heldout, cfg.n_mels, cache, encoder)
    frames = min(int(round(a.crop * STYLE_RATE / HOP)), pairs.mel.shape[1])
    print(f"{len(pairs)} train clips from {dirs}, {len(pairs.vecs)} train texts, {len(held.meta)} held-out clips; "
          f"crops of {frames} frames")
    batches = Batches(pairs, a.batch, frames, a.seed)
    state = {"step": 0, "elapsed": 0.0, "preset": a.preset, "style_config": dict(vars(cfg)), "args": vars(a)}
    if (out / "state.json").is_file():
        state = json.loads((out / "state.json").read_text())
        rundir.load_module(out / "style.safetensors", style)
        rundir.load_module(out / "opt.safetensors", opt)
        batches.rng = np.random.default_rng([a.seed, state["step"]])
        print(f"resumed {out} at step {state['step']}")
    state["data"] = dirs
    state["train_clips"] = len(pairs)
    def held_out() -> dict:
        return {"clips": len(held.meta), **held.evaluate(style)}

    def one_step() -> dict:
        vec, mel = batches()
        loss = mel_step(style, opt, jnp.asarray(vec), jnp.asarray(mel))
        return {"loss": loss, "lr": sched(state["step"] + 1),
                "temp": np.exp(min(float(style.log_temp[...]), MAX_LOG_TEMP))}

    modules = {"style": style, "opt": opt}
    with open(out / "metrics.jsonl", "a") as metrics_f:
        trained = rundir.train_loop(out, state, modules, steps=a.steps, minutes=a.minutes, eval_every=a.eval_every,
                                    ckpt_every=a.ckpt_every, step=one_step, evaluate=held_out, plot=plot,
                                    metrics_file=metrics_f, desc="style",
                                    postfix=lambda r: {"loss": f"{r['loss']:.3f}", "temp": f"{r['temp']:.1f}"})
        if not a.no_rvq and (trained or not state.get("rvq")):
            stats = fit_rvq(style, pairs, frames, seed=a.seed)
            state["rvq"] = stats
            metrics_f.write(json.dumps({"kind": "rvq", "step": state["step"], **stats}) + "\n")
            print("style RVQ:", json.dumps(stats))
    return rundir.finish(out, modules, state, plot)


if __name__ == "__main__":
    raise SystemExit(main())
