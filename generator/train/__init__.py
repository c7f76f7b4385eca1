"""Training losses and jitted train steps for the codec, the LM and the style model.

Why here and not in the model files: training needs optimiser state, EMA codebook updates and
loss weighting, none of which the streaming path should import. The codec loss follows the
codec probe's advice (``shared/research/codec-probe.md``): a direct complex-spectrum target at the
model's own STFT resolution plus multi-resolution log-magnitude L1, and a small commitment term.
Steps use ``nnx.jit`` (training speed is not the real-time constraint); EMA codebooks are
updated outside the gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from generator.audio.codec import Codec, compress, stft
from generator.audio.lm import Depthformer
from generator.audio.style import StyleModel, info_nce

RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def magnitude(audio, n_fft: int, hop: int):
    """audio [B, N, C] -> STFT magnitude [B, C, frames, bins] (Hann window).

    Frames start at 0, hop, 2*hop, ... (only whole frames). When hop divides n_fft the frames are
    built from shifted reshapes, which is several times faster than a gather on XLA-CPU.
    """
    x = jnp.moveaxis(audio, 1, -1)
    n = (x.shape[-1] - n_fft) // hop + 1
    if n_fft % hop == 0:
        k = n_fft // hop
        r = x[..., : (n + k - 1) * hop].reshape(x.shape[:-1] + (n + k - 1, hop))
        frames = jnp.concatenate([r[..., i:i + n, :] for i in range(k)], axis=-1)
    else:
        idx = jnp.arange(n)[:, None] * hop + jnp.arange(n_fft)[None]
        frames = x[..., idx]
    spec = jnp.fft.rfft(frames * jnp.hanning(n_fft), axis=-1)
    return jnp.abs(spec)


def log_mag(audio, n_fft: int, hop: int):
    """audio [B, N, C] -> log magnitude [B, C, frames, bins] (floor 1e-5)."""
    return jnp.log(magnitude(audio, n_fft, hop) + 1e-5)


def mr_stft_loss(out, ref):
    """Multi-resolution (log-magnitude L1, spectral convergence) of ``out`` against ``ref``.

    Spectral convergence (per item, on linear magnitudes) is dominated by the loud bins, so it
    catches what log-magnitude L1 alone let through in the first CPU runs: phase that cancels in the
    overlap-add and leaves the output ~10 dB too quiet.
    """
    l1 = sc = 0.0
    for n, h in RESOLUTIONS:
        a, b = magnitude(out, n, h), magnitude(ref, n, h)
        l1 += jnp.abs(jnp.log(a + 1e-5) - jnp.log(b + 1e-5)).mean()
        sc += (jnp.sqrt(((a - b) ** 2).sum((1, 2, 3))) / (jnp.sqrt((b ** 2).sum((1, 2, 3))) + 1e-5)).mean()
    return l1 / len(RESOLUTIONS), sc / len(RESOLUTIONS)


def spectral_distance(a, b):
    """Mean multi-resolution log-magnitude L1 between two audio batches (lower is better)."""
    return sum(jnp.abs(log_mag(a, n, h) - log_mag(b, n, h)).mean() for n, h in RESOLUTIONS) / len(RESOLUTIONS)


def codec_loss(codec: Codec, audio, key, commit_weight: float = 0.1, quantize: bool = True):
    """Reconstruction loss of one batch [B, N, 2]: compressed-complex L1 at the codec's own STFT
    (gives phase a direct target) + multi-resolution log-magnitude L1 and spectral convergence
    (+ commitment with RVQ).

    ``quantize=False`` trains the continuous autoencoder (phase (a) of the codec probe's recipe):
    latents go straight to the decoder and no codebook statistics are produced.
    """
    z = codec.embed(audio)
    if quantize:
        q, commit, assign = codec.rvq.train_quantize(z, key)
    else:
        q, commit, assign = z, jnp.zeros(()), None
    spec, _ = codec.latents_to_spec(q, codec.init_decoder_state(audio.shape[0])["conv"])
    target = stft(audio)
    complex_l1 = jnp.abs(compress(spec) - compress(target)).mean()
    out, _ = codec.spec_to_audio(spec, codec.init_decoder_state(audio.shape[0])["tail"])
    mr, sc = mr_stft_loss(out, audio)
    loss = complex_l1 + mr + sc + commit_weight * commit
    return loss, ({"complex": complex_l1, "mrstft": mr, "sc": sc, "commit": commit}, assign)


def make_optimizer(model: nnx.Module, lr: float = 1e-3, clip: float = 1.0):
    tx = optax.chain(optax.clip_by_global_norm(clip), optax.adamw(lr, b1=0.8, b2=0.99, weight_decay=1e-4))
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


@nnx.jit
def codec_step(codec: Codec, optimizer: nnx.Optimizer, audio, key):
    """One codec update (params by AdamW, codebooks by EMA); returns (loss, metrics)."""
    grad_fn = nnx.value_and_grad(codec_loss, argnums=nnx.DiffState(0, nnx.Param), has_aux=True)
    (loss, (metrics, (codes, residuals))), grads = grad_fn(codec, audio, key)
    optimizer.update(codec, grads)
    codec.rvq.ema_update(codes, residuals)
    return loss, metrics


@nnx.jit
def codec_ae_step(codec: Codec, optimizer: nnx.Optimizer, audio, key):
    """One continuous-autoencoder update (no quantizer, codebooks untouched); returns (loss, metrics)."""
    grad_fn = nnx.value_and_grad(lambda c: codec_loss(c, audio, key, quantize=False),
                                 argnums=nnx.DiffState(0, nnx.Param), has_aux=True)
    (loss, (metrics, _)), grads = grad_fn(codec)
    optimizer.update(codec, grads)
    return loss, metrics


@nnx.jit
def lm_step(lm: Depthformer, optimizer: nnx.Optimizer, codes, style, key):
    """One teacher-forced LM update. codes [B, T, L], style [B, T, S]."""
    grad_fn = nnx.value_and_grad(lambda m: m.loss(codes, style, key), has_aux=True)
    (loss, aux), grads = grad_fn(lm)
    optimizer.update(lm, grads)
    return loss, aux


def style_loss(style: StyleModel, sentence_vectors, clips):
    """InfoNCE between frozen-MiniLM text vectors [B, 384] and matching 16 kHz clips [B, N]."""
    return info_nce(style.embed_text(sentence_vectors), style.embed_audio(clips), style.log_temp[...])


@nnx.jit
def style_step(style: StyleModel, optimizer: nnx.Optimizer, sentence_vectors, clips):
    loss, grads = nnx.value_and_grad(style_loss, argnums=nnx.DiffState(0, nnx.Param))(
        style, sentence_vectors, clips)
    optimizer.update(style, grads)
    return loss
