"""SpectroStream-like neural audio codec: 48 kHz stereo <-> RVQ tokens at 25 frames/s.

Why this design: an STFT front end (n_fft 960, hop 480, sqrt-Hann analysis and synthesis
windows, so plain overlap-add reconstructs exactly) gives 4 spectral frames per 40 ms token
frame. The encoder folds them into one latent that a residual VQ turns into tokens. The decoder
is causal at the token rate: its 25 Hz convolutions keep their last ``kernel - 1`` inputs and
the inverse STFT keeps its 480-sample overlap tail as *carried state*, so decoding a stream a
few frames at a time is bit-for-bit the same as decoding it in one go (no seams, no crossfade).
The decoder predicts log-magnitude and a phase vector per bin (Vocos style).

Shapes: B batch, F token frames, J = 4F STFT frames, C = 2 channels, K = 481 bins.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from generator.audio.config import CodecConfig
from generator.audio.rvq import RVQ

SUB = 4  # STFT frames per token frame (1920 / 480)


def window(n_fft: int = 960):
    """Periodic sqrt-Hann: analysis x synthesis = Hann, whose hop n/2 overlap-add is 1."""
    return jnp.sqrt(0.5 - 0.5 * jnp.cos(2 * jnp.pi * jnp.arange(n_fft) / n_fft))


def stft(audio, hop: int = 480):
    """audio [B, F*1920, C] -> complex [B, 4F, C, K]; frame j covers samples [480j, 480j+960)."""
    b, n, c = audio.shape
    x = jnp.pad(audio, ((0, 0), (0, hop), (0, 0))).reshape(b, n // hop + 1, hop, c)
    frames = jnp.concatenate([x[:, :-1], x[:, 1:]], axis=2)  # [B, J, 960, C]
    frames = frames * window(2 * hop)[:, None]
    return jnp.fft.rfft(frames, axis=2).transpose(0, 1, 3, 2)


def compress(spec, power: float = 0.3):
    """Magnitude-compressed complex spectrum as real features [..., 2K] (re, im)."""
    mag = jnp.abs(spec)
    z = spec * (mag + 1e-8) ** (power - 1)
    return jnp.concatenate([z.real, z.imag], axis=-1)


class CausalConv(nnx.Module):
    """Residual kernel-k conv over token frames, causal; streaming keeps the last k-1 inputs."""

    def __init__(self, width: int, kernel: int, *, rngs: nnx.Rngs):
        self.kernel = kernel
        self.norm = nnx.RMSNorm(width, rngs=rngs)
        self.conv = nnx.Linear(kernel * width, width, rngs=rngs)
        self.proj = nnx.Linear(width, width, rngs=rngs)

    def __call__(self, x, past):
        """x [B, F, W], past [B, k-1, W] -> (y [B, F, W], new past)."""
        h = jnp.concatenate([past, self.norm(x)], axis=1)
        f = x.shape[1]
        taps = jnp.concatenate([h[:, i:i + f] for i in range(self.kernel)], axis=-1)
        y = x + self.proj(jax.nn.gelu(self.conv(taps)))
        return y, h[:, f:]


class FrameMLP(nnx.Module):
    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.norm = nnx.RMSNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, 2 * width, rngs=rngs)
        self.down = nnx.Linear(2 * width, width, rngs=rngs)

    def __call__(self, x):
        return x + self.down(jax.nn.gelu(self.up(self.norm(x))))


class Codec(nnx.Module):
    def __init__(self, cfg: CodecConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        w, k = cfg.width, cfg.bins
        # encoder
        self.enc_in = nnx.Linear(2 * 2 * k, w, rngs=rngs)
        self.enc_fold = nnx.Linear(SUB * w, w, rngs=rngs)
        self.enc_blocks = nnx.List([FrameMLP(w, rngs=rngs) for _ in range(cfg.enc_blocks)])
        self.enc_ctx = nnx.Linear(3 * w, w, rngs=rngs)
        self.enc_out = nnx.Linear(w, cfg.latent_dim, rngs=rngs)
        self.rvq = RVQ(cfg.levels, cfg.codebook_size, cfg.latent_dim, decay=cfg.ema_decay, rngs=rngs)
        # decoder
        self.dec_in = nnx.Linear(cfg.latent_dim, w, rngs=rngs)
        self.dec_convs = nnx.List([CausalConv(w, cfg.kernel, rngs=rngs) for _ in range(cfg.dec_conv_blocks)])
        self.dec_unfold = nnx.Linear(w, SUB * w, rngs=rngs)
        self.dec_blocks = nnx.List([FrameMLP(w, rngs=rngs) for _ in range(cfg.dec_frame_blocks)])
        self.dec_norm = nnx.RMSNorm(w, rngs=rngs)
        self.dec_out = nnx.Linear(w, 2 * 3 * k, rngs=rngs)

    # ---- encoder -----------------------------------------------------------------------
    def embed(self, audio):
        """audio [B, F*1920, 2] -> continuous latents [B, F, latent_dim] (non-causal)."""
        spec = stft(audio)  # [B, J, C, K]
        b, j = spec.shape[:2]
        h = jax.nn.gelu(self.enc_in(compress(spec).reshape(b, j, -1)))
        h = self.enc_fold(h.reshape(b, j // SUB, -1))
        pad = jnp.pad(h, ((0, 0), (1, 1), (0, 0)))
        h = h + jax.nn.gelu(self.enc_ctx(jnp.concatenate([pad[:, :-2], h, pad[:, 2:]], -1)))
        for blk in self.enc_blocks:
            h = blk(h)
        return self.enc_out(h)

    def encode(self, audio, levels: int | None = None):
        """audio [B, F*1920, 2] -> tokens [B, F, levels] int32 in [0, 1024)."""
        codes, _, _ = self.rvq.quantize(self.embed(audio), levels)
        return codes

    # ---- decoder -----------------------------------------------------------------------
    def init_decoder_state(self, batch: int = 1):
        w = self.cfg.width
        return {
            "conv": tuple(jnp.zeros((batch, self.cfg.kernel - 1, w)) for _ in self.dec_convs),
            "tail": jnp.zeros((batch, self.cfg.hop, 2)),
        }

    def latents_to_spec(self, z, conv_state):
        """z [B, F, D] -> (complex spectrum [B, 4F, C, K], new conv state)."""
        b, f = z.shape[:2]
        h = self.dec_in(z)
        new = []
        for conv, past in zip(self.dec_convs, conv_state):
            h, past = conv(h, past)
            new.append(past)
        h = self.dec_unfold(h).reshape(b, f * SUB, -1)
        for blk in self.dec_blocks:
            h = blk(h)
        out = self.dec_out(self.dec_norm(h)).reshape(b, f * SUB, 2, 3, self.cfg.bins)
        mag = jnp.exp(jnp.clip(out[..., 0, :], -15.0, 6.0))
        px, py = out[..., 1, :], out[..., 2, :]
        norm = jnp.sqrt(px ** 2 + py ** 2 + 1e-8)
        return mag * (px + 1j * py) / norm, tuple(new)

    def spec_to_audio(self, spec, tail):
        """Inverse STFT by overlap-add with a carried 480-sample tail; returns ([B, 4F*480, C], tail)."""
        hop = self.cfg.hop
        frames = jnp.fft.irfft(spec, n=2 * hop, axis=-1).transpose(0, 1, 3, 2)  # [B, J, 960, C]
        frames = frames * window(2 * hop)[:, None]
        first, second = frames[:, :, :hop], frames[:, :, hop:]
        prev = jnp.concatenate([tail[:, None], second[:, :-1]], axis=1)
        audio = (first + prev).reshape(frames.shape[0], -1, frames.shape[-1])
        return audio, second[:, -1]

    def decode_stream(self, codes, state):
        """codes [B, F, n<=levels], decoder state -> (audio [B, F*1920, 2], new state)."""
        spec, conv = self.latents_to_spec(self.rvq.dequantize(codes), state["conv"])
        audio, tail = self.spec_to_audio(spec, state["tail"])
        if self.cfg.output_gain != 1.0:  # static: a trained codec's measured make-up gain
            audio = audio * self.cfg.output_gain
        return audio, {"conv": conv, "tail": tail}

    def decode(self, codes):
        """codes [B, F, n] -> audio [B, F*1920, 2] from an empty decoder state."""
        audio, _ = self.decode_stream(codes, self.init_decoder_state(codes.shape[0]))
        return audio


def as_batch(audio) -> jnp.ndarray:
    """[N, 2] or [N] numpy -> [1, N', 2] float32, cut to whole frames."""
    a = np.asarray(audio, np.float32)
    if a.ndim == 1:
        a = np.stack([a, a], -1)
    n = a.shape[0] // 1920 * 1920
    return jnp.asarray(a[None, :n, :2])
