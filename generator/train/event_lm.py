"""The training loop of the note families' event transformers (``jamgen train symbolic|groove``).

Why one loop: the ``symbolic`` and ``groove`` families train the same network
(:mod:`generator.core.event_lm`) on token sets of the same layout (:mod:`generator.data.token_sets`); they
differ in their vocabulary, presets, checkpoint format and where training windows may start, which a
:class:`Family` record names. Why it looks like this: training runs on shared CPU cores within a
wall-time budget, so

- the learning-rate schedule (linear warm-up, cosine decay to 10%) follows the *fraction of the
  time budget used*, not a step count, and the run ends when the budget is spent;
- the prompt side is cheap: every caption and paraphrase is embedded once by the frozen MiniLM
  (cached ``.npy`` next to the dataset), and the model learns its own projection of that vector;
  conditioning dropout (``cond_dropout``) trains the unconditional branch CFG needs;
- checkpoints (safetensors + JSON, atomically replaced) are written every ``--ckpt-minutes`` and
  at the end, with the optimiser state and trainer counters, so ``--resume`` continues exactly
  where it stopped (same step, same elapsed time, same schedule);
- metrics go to ``metrics.jsonl`` (train loss per logged step, held-out NLL per evaluation) and
  ``curve.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from generator.core.event_lm import EventTransformer, param_count
from generator.data.token_sets import TokenSet

log = logging.getLogger("generator.train")
PAD, BOS = 0, 1  # both note vocabularies start with PAD, BOS


@dataclasses.dataclass(frozen=True)
class Family:
    """What the loop needs to know about a note family.

    Attributes:
      name: the family (``jamgen train <name>``; default paths ``runs/<name>/...``).
      presets: model configs by name (``--preset``).
      checkpoint: a module with ``save(dir, config, model, info)`` and ``load(dir) -> (config, model, meta)``.
      crops: ``crops(data, length, seed)`` -> an object whose ``batch(size)`` returns (tokens [B, L], caption ids [B]).
      window_starts: ``window_starts(seq, length)`` -> where held-out windows start in a work's tokens.
      prepare: ``prepare(train_path, heldout_path, sources, seconds)`` tokenises the data sources.
    """

    name: str
    presets: dict
    checkpoint: Any
    crops: Callable
    window_starts: Callable
    prepare: Callable


def text_vectors(data: TokenSet, cache_path: pathlib.Path) -> np.ndarray:
    """MiniLM vectors [C, 384] of every text of ``data`` (cached)."""
    if cache_path.is_file():
        vecs = np.load(cache_path, allow_pickle=False)
        if len(vecs) == len(data.texts):
            return vecs
    from tqdm import tqdm

    from generator.core.text_encoder import TextEncoder

    enc = TextEncoder()
    order = sorted(range(len(data.texts)), key=lambda i: len(data.texts[i]))  # short batches pad less
    vecs = np.zeros((len(data.texts), enc.dim), np.float32)
    for i in tqdm(range(0, len(order), 64), desc="embed captions", unit="batch"):
        idx = order[i:i + 64]
        vecs[idx] = enc([data.texts[j] for j in idx])
    np.save(cache_path, vecs)
    return vecs


def loss_fn(model: EventTransformer, x, style, use_style):
    """Mean next-token NLL (nats) over non-PAD targets; also returns the token count."""
    logits = model(x[:, :-1], style, use_style)
    target = x[:, 1:]
    mask = (target != PAD).astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), target)
    return (nll * mask).sum() / jnp.maximum(mask.sum(), 1.0), mask.sum()


def make_optimizer(weight_decay: float = 0.01):
    """Adam direction with clipping and decoupled weight decay; the step size is applied outside
    (traced ``lr``) so the time-based schedule never recompiles."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(b2=0.98),
                       optax.add_decayed_weights(weight_decay, mask=lambda p: jax.tree.map(lambda a: a.ndim > 1, p)))


def lr_at(fraction: float, peak: float, warmup: float = 0.03, floor: float = 0.1) -> float:
    if fraction < warmup:
        return peak * max(fraction / warmup, 0.02)
    f = min(1.0, (fraction - warmup) / (1 - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * f)))


def plot_curve(metrics_path: pathlib.Path, png: pathlib.Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib missing: no %s", png)
        return
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    tr = [(r["tokens"], r["loss"]) for r in rows if "loss" in r]
    ev = [(r["tokens"], r["heldout_nll"]) for r in rows if "heldout_nll" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if tr:
        t, l = zip(*tr)
        k = max(1, len(l) // 50)
        smooth = np.convolve(l, np.ones(k) / k, mode="valid")
        ax.plot(np.array(t) / 1e6, l, alpha=0.25, color="C0")
        ax.plot(np.array(t[k - 1:]) / 1e6, smooth, color="C0", label="train NLL")
    if ev:
        t, l = zip(*ev)
        ax.plot(np.array(t) / 1e6, l, "o-", color="C1", label="held-out NLL")
    ax.set_xlabel("training tokens (M)")
    ax.set_ylabel("nats / token")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def stride_starts(seq: np.ndarray, length: int):
    """Held-out windows every ``length - 1`` tokens (the symbolic family's: any token may start one)."""
    return range(0, max(1, len(seq) - 1), length - 1)


def heldout_batches(data: TokenSet, length: int, batch: int, max_batches: int, window_starts=stride_starts):
    """Fixed non-overlapping windows over the held-out works, each with the work's caption."""
    rows, caps = [], []
    for i in range(len(data)):
        seq = data.work(i)
        for s in window_starts(seq, length):
            w = seq[s:s + length] if s == 0 else np.concatenate([[BOS], seq[s:s + length - 1]])
            if len(w) < 16:
                continue
            row = np.full((length,), PAD, np.int32)
            row[:len(w)] = w
            rows.append(row)
            caps.append(data.caption_ids[i, 0])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))[: max_batches * batch]
    out = []
    for j in range(0, len(order) - batch + 1, batch):
        idx = order[j:j + batch]
        out.append((np.stack([rows[k] for k in idx]), np.asarray([caps[k] for k in idx], np.int32)))
    return out


def evaluate(eval_fn, params, batches, vecs, use_style=True) -> float:
    """Token-weighted held-out NLL in nats/token."""
    total, count = 0.0, 0.0
    for x, caps in batches:
        nll, n = eval_fn(params, jnp.asarray(x), jnp.asarray(vecs[caps]), jnp.full((len(x),), use_style))
        total += float(nll) * float(n)
        count += float(n)
    return total / max(count, 1.0)


def main(argv, family: Family, description: str):
    """``jamgen train <family>``: parse ``argv``, then train (or resume) within the time budget."""
    name = family.name
    p = argparse.ArgumentParser(prog=f"python -m generator.train {name}", description=description)
    p.add_argument("--out", default=f"runs/{name}/run", help="run directory (checkpoints, metrics, curve)")
    p.add_argument("--data", default=f"runs/{name}/train.npz")
    p.add_argument("--heldout", default=f"runs/{name}/heldout.npz")
    p.add_argument("--prepare", action="store_true", help="tokenise the data sources first")
    p.add_argument("--prepare-seconds", type=float, default=600)
    p.add_argument("--sources", default="mma,debian,music21")
    p.add_argument("--preset", default=name, choices=sorted(family.presets))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--minutes", type=float, default=40.0, help="wall-time budget of the whole run")
    p.add_argument("--max-steps", type=int, default=1_000_000)
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--eval-minutes", type=float, default=5.0)
    p.add_argument("--eval-batches", type=int, default=12)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--ship", default=None, help="also copy the final weights to this checkpoint directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=int, default=None,
                   help="override the preset's window (training length and KV cache); weights do not depend on it")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="start a new run from a checkpoint's weights (e.g. to continue at a longer --window)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from tqdm import tqdm

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.prepare:
        family.prepare(args.data, args.heldout, args.sources.split(","), args.prepare_seconds)

    data, held = TokenSet(args.data), TokenSet(args.heldout)
    vecs = text_vectors(data, pathlib.Path(args.data).with_suffix(".text.npy"))
    hvecs = text_vectors(held, pathlib.Path(args.heldout).with_suffix(".text.npy"))
    log.info("train: %d works, %d tokens; held-out: %d works, %d tokens",
             len(data), len(data.tokens), len(held), len(held.tokens))

    trainer_path = out / "trainer.json"
    if args.resume and trainer_path.is_file():
        config, model, _ = family.checkpoint.load(out)
        trainer = json.loads(trainer_path.read_text())
    else:
        config, start = family.presets[args.preset], None
        if args.init_from:
            config, start, _ = family.checkpoint.load(args.init_from)
        if args.window:
            config = dataclasses.replace(config, window=args.window)
        model = EventTransformer(config, rngs=nnx.Rngs(args.seed))
        if start is not None:
            nnx.update(model, nnx.state(start))
        trainer = {"step": 0, "tokens": 0, "elapsed": 0.0, "seed": args.seed}
    log.info("model %s: %.2fM parameters", config.name, param_count(model) / 1e6)

    opt = make_optimizer()
    graph, params = nnx.split(model)
    opt_state = opt.init(params)
    if args.resume and (out / "opt.safetensors").is_file():
        from safetensors.numpy import load_file

        leaves, treedef = jax.tree_util.tree_flatten(opt_state)
        saved = load_file(str(out / "opt.safetensors"))
        opt_state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(saved[str(i)]) for i in range(len(leaves))])

    def train_step(params, opt_state, x, style, use_style, lr):
        def f(p):
            return loss_fn(nnx.merge(graph, p), x, style, use_style)

        (loss, n), grads = jax.value_and_grad(f, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = jax.tree.map(lambda a, u: a - lr * u, params, updates)
        return params, opt_state, loss

    step_fn = jax.jit(train_step, donate_argnums=(0, 1))
    eval_fn = jax.jit(lambda params, x, s, u: loss_fn(nnx.merge(graph, params), x, s, u))
    crops = family.crops(data, config.window + 1, seed=args.seed + trainer["step"])
    hbatches = heldout_batches(held, config.window + 1, args.batch, args.eval_batches, family.window_starts)
    rng = np.random.default_rng(args.seed + 7919 * trainer["step"])
    metrics = open(out / "metrics.jsonl", "a")
    budget = args.minutes * 60.0

    def checkpoint(final=False):
        nnx.update(model, params)
        info = {k: trainer[k] for k in ("step", "tokens", "elapsed")}
        info.update({k: trainer[k] for k in ("last_loss", "heldout_nll", "heldout_nll_uncond") if k in trainer})
        family.checkpoint.save(out, config, model, info)
        from safetensors.numpy import save_file

        leaves = jax.tree_util.tree_leaves(opt_state)
        save_file({str(i): np.asarray(v) for i, v in enumerate(leaves)}, str(out / "opt.safetensors"))
        trainer_path.write_text(json.dumps(trainer, indent=2))
        plot_curve(out / "metrics.jsonl", out / "curve.png")
        if final and args.ship:
            family.checkpoint.save(args.ship, config, model, info)

    def run_eval():
        nll = evaluate(eval_fn, params, hbatches, hvecs, True)
        nll_u = evaluate(eval_fn, params, hbatches, hvecs, False)
        trainer.update(heldout_nll=nll, heldout_nll_uncond=nll_u)
        metrics.write(json.dumps({"step": trainer["step"], "tokens": trainer["tokens"],
                                  "elapsed": round(trainer["elapsed"], 1),
                                  "heldout_nll": nll, "heldout_nll_uncond": nll_u}) + "\n")
        metrics.flush()
        log.info("step %d: held-out NLL %.4f nats/token (unconditional %.4f)", trainer["step"], nll, nll_u)

    last_ckpt = last_eval = trainer["elapsed"]
    bar = tqdm(total=int(budget), initial=int(trainer["elapsed"]), unit="s", desc="train (wall s)")
    t_start = time.monotonic() - trainer["elapsed"]
    losses = []
    first = True
    while trainer["elapsed"] < budget and trainer["step"] < args.max_steps:
        x, caps = crops.batch(args.batch)
        use = rng.random(args.batch) >= config.cond_dropout
        lr = lr_at(trainer["elapsed"] / budget, args.lr)
        params, opt_state, loss = step_fn(params, opt_state, jnp.asarray(x), jnp.asarray(vecs[caps]),
                                          jnp.asarray(use), jnp.float32(lr))
        loss = float(loss)
        if first:  # the first step of a process compiles: keep that out of the time budget
            t_start = time.monotonic() - trainer["elapsed"]
            first = False
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {trainer['step']}")
        trainer["step"] += 1
        trainer["tokens"] += int((x[:, 1:] != PAD).sum())
        now = time.monotonic() - t_start
        bar.update(int(now) - int(trainer["elapsed"]))
        trainer["elapsed"] = now
        trainer["last_loss"] = loss
        losses.append(loss)
        metrics.write(json.dumps({"step": trainer["step"], "tokens": trainer["tokens"], "elapsed": round(now, 1),
                                  "loss": loss, "lr": lr}) + "\n")
        bar.set_postfix(step=trainer["step"], loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{lr:.1e}")
        if now - last_eval >= args.eval_minutes * 60:
            run_eval()
            last_eval = now
        if now - last_ckpt >= args.ckpt_minutes * 60:
            checkpoint()
            last_ckpt = now
    bar.close()
    run_eval()
    checkpoint(final=True)
    metrics.close()
    log.info("done: %d steps, %.1fM tokens, final train loss %.4f, held-out NLL %.4f",
             trainer["step"], trainer["tokens"] / 1e6, trainer.get("last_loss", float("nan")), trainer["heldout_nll"])
