"""MusicCoCa-like style model: text and audio into one embedding space, then RVQ style tokens.

Why: the LM is conditioned on a handful of discrete style tokens per frame, and users steer with
weighted text prompts (and audio clips). The text tower is the frozen pretrained MiniLM
(:mod:`generator.core.text_encoder`) plus a learned projection; the audio tower is a small network on
16 kHz mono log-mel frames of 10 s clips: 8-frame patches (80 ms, 12.5 Hz) projected to the tower
width, then depthwise dilated temporal convolutions (receptive field ~2.5 s, so it can hear rhythm
and tempo), each followed by a per-step MLP, then mean+std pooling over time (and a mean over
clips). Both are L2-normalised and trained together with a symmetric InfoNCE loss
(:func:`info_nce`); the trainer is :mod:`generator.train.style`. Prompt blending is the
weighted mean of the prompts' embeddings, re-tokenised (:class:`generator.core.prompts.PromptBank`).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from generator.audio.codec import FrameMLP
from generator.audio.config import StyleConfig
from generator.audio.rvq import RVQ

STYLE_RATE = 16_000
CLIP_SECONDS = 10.0
N_FFT, HOP = 512, 160


def _unit(x, axis=-1):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), 1e-8)


def to_mono_16k(audio: np.ndarray, rate: int = 48_000) -> np.ndarray:
    """[N] or [N, C] at ``rate`` -> mono float32 at 16 kHz (windowed-sinc low-pass + decimation)."""
    x = np.asarray(audio, np.float32)
    x = x.mean(-1) if x.ndim == 2 else x
    if rate == STYLE_RATE:
        return x
    if rate % STYLE_RATE:
        idx = np.arange(0, len(x) * STYLE_RATE / rate) * rate / STYLE_RATE
        return np.interp(idx, np.arange(len(x)), x).astype(np.float32)
    f = rate // STYLE_RATE
    n = np.arange(-32, 33)
    taps = np.sinc(n / f) / f * np.hanning(len(n))
    return np.convolve(x, taps, mode="same")[::f].astype(np.float32)


def mel_filters(n_mels: int, n_fft: int = N_FFT, rate: int = STYLE_RATE) -> np.ndarray:
    """Triangular mel filterbank [n_fft//2+1, n_mels] (HTK mel scale)."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)
    pts = inv(np.linspace(mel(20.0), mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = pts[:-2, None], pts[1:-1, None], pts[2:, None]
    w = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return w.T.astype(np.float32)


def log_mel(clips, filters):
    """clips [B, N] at 16 kHz -> [B, frames, n_mels] log-mel."""
    n = (clips.shape[1] - N_FFT) // HOP + 1
    idx = jnp.arange(n)[:, None] * HOP + jnp.arange(N_FFT)[None]
    spec = jnp.abs(jnp.fft.rfft(clips[:, idx] * jnp.hanning(N_FFT), axis=-1)) ** 2
    return jnp.log(spec @ filters + 1e-6)


PATCH = 8  # log-mel frames (10 ms each) per audio-tower step: 12.5 Hz
DILATIONS = (1, 2, 4, 8)  # depthwise temporal convs (kernel 3) at 12.5 Hz: ~2.5 s receptive field


def normalize_mel(mel):
    """Log-mel [B, T, M] -> zero-mean (per clip: loudness-invariant), roughly unit-scale features."""
    return (mel - mel.mean(axis=(1, 2), keepdims=True)) / 4.0


class StyleModel(nnx.Module):
    def __init__(self, cfg: StyleConfig, text_dim: int = 384, *, rngs: nnx.Rngs):
        self.cfg = cfg
        w = cfg.audio_width
        self.text_proj = nnx.Linear(text_dim, cfg.dim, rngs=rngs)
        self.audio_in = nnx.Linear(PATCH * cfg.n_mels, w, rngs=rngs)
        self.audio_convs = nnx.List([
            nnx.Conv(w, w, kernel_size=(3,), kernel_dilation=(d,), feature_group_count=w, padding="SAME",
                     rngs=rngs) for d in DILATIONS])
        self.audio_blocks = nnx.List([FrameMLP(w, rngs=rngs) for _ in DILATIONS])
        self.audio_norm = nnx.LayerNorm(2 * w, rngs=rngs)
        self.audio_out = nnx.Linear(2 * w, cfg.dim, rngs=rngs)
        self.log_temp = nnx.Param(jnp.asarray(np.log(1 / 0.07), jnp.float32))
        self.rvq = RVQ(cfg.levels, cfg.codebook_size, cfg.dim, rngs=rngs)

    def embed_text(self, sentence_vectors):
        """Frozen MiniLM vectors [B, 384] -> unit style vectors [B, dim]."""
        return _unit(self.text_proj(sentence_vectors))

    def embed_audio(self, clips):
        """16 kHz mono clips [B, N] (N >= 1 s; 10 s clips in use) -> unit style vectors [B, dim]."""
        return self.embed_mel(log_mel(clips, jnp.asarray(mel_filters(self.cfg.n_mels))))

    def embed_mel(self, mel):
        """Log-mel frames [B, T, n_mels] (:func:`log_mel`, T >= PATCH) -> unit style vectors [B, dim]."""
        b, t, _ = mel.shape
        t = t // PATCH * PATCH
        h = self.audio_in(normalize_mel(mel[:, :t]).reshape(b, t // PATCH, -1))
        for conv, blk in zip(self.audio_convs, self.audio_blocks):
            h = blk(h + conv(h))
        pooled = jnp.concatenate([h.mean(1), h.std(1)], axis=-1)
        return _unit(self.audio_out(self.audio_norm(pooled)))

    def tokenize(self, vectors, levels: int | None = None):
        """[..., dim] -> style tokens [..., levels] in [0, 1024)."""
        codes, _, _ = self.rvq.quantize(vectors, levels)
        return codes


def info_nce(text_vecs, audio_vecs, log_temp):
    """Symmetric contrastive loss over a batch of matching (text, audio) pairs."""
    logits = text_vecs @ audio_vecs.T * jnp.exp(log_temp)
    labels = jnp.arange(logits.shape[0])
    lt = -jax.nn.log_softmax(logits, axis=1)[labels, labels].mean()
    la = -jax.nn.log_softmax(logits, axis=0)[labels, labels].mean()
    return (lt + la) / 2


def clips_of(audio16k: np.ndarray) -> np.ndarray:
    """Split mono 16 kHz audio into 10 s clips [n, 160000] (the last one zero-padded)."""
    n = int(STYLE_RATE * CLIP_SECONDS)
    count = max(1, -(-len(audio16k) // n))
    out = np.zeros((count, n), np.float32)
    for i in range(count):
        seg = audio16k[i * n:(i + 1) * n]
        out[i, :len(seg)] = seg
    return out


