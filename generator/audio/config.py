"""Model configurations and named presets, in one place.

Why a module of its own: the codec, style model and LM are built from these frozen dataclasses,
checkpoints store them as JSON, and the benchmark and tests pick presets by name. Only primary
numbers are stored; derived ones are properties. Shapes follow Magenta RT 2 (see
``shared/research/mrt.md`` §2.1): 48 kHz stereo, 25 frames/s, RVQ codebooks of 1024.
"""

from __future__ import annotations

import dataclasses
from typing import Any

CODEBOOK_SIZE = 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class CodecConfig:
    """SpectroStream-like codec: STFT (n_fft 960, hop 480) -> 4 STFT frames per 40 ms latent."""

    width: int = 256  # encoder/decoder channels
    latent_dim: int = 128  # RVQ vector size
    levels: int = 8  # RVQ depth stored in the codec
    codebook_size: int = CODEBOOK_SIZE
    dec_conv_blocks: int = 2  # causal convs at 25 Hz (streamed with carried state)
    dec_frame_blocks: int = 2  # pointwise residual MLPs at 100 STFT frames/s
    enc_blocks: int = 2
    kernel: int = 3  # temporal kernel of the 25 Hz convolutions
    ema_decay: float = 0.99
    output_gain: float = 1.0  # make-up gain of decoded audio, measured on held-out audio at export

    n_fft = 960
    hop = 480

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class StyleConfig:
    """MusicCoCa-like style model: frozen MiniLM text tower + small mel audio tower."""

    dim: int = 256  # shared embedding size
    levels: int = 12  # style RVQ depth
    codebook_size: int = CODEBOOK_SIZE
    audio_width: int = 256
    n_mels: int = 64
    text_max_len: int = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class LMConfig:
    """Depthformer: temporal transformer over frames + depth transformer over RVQ levels."""

    levels: int = 8  # RVQ levels generated per frame (a prefix of the codec's levels)
    style_levels: int = 6  # style tokens fed per frame
    codebook_size: int = CODEBOOK_SIZE
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    ffn: int = 1024
    window: int = 128  # temporal attention window (frames) = ring-buffer KV cache length
    depth_d_model: int = 128
    depth_layers: int = 2
    depth_heads: int = 2
    depth_ffn: int = 512
    cond_dropout: float = 0.15  # training: probability of masking the style (enables CFG)
    logit_cap: float = 30.0

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.depth_d_model % self.depth_heads:
            raise ValueError(
                f"depth_d_model {self.depth_d_model} is not divisible by depth_heads {self.depth_heads}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SystemConfig:
    name: str
    codec: CodecConfig
    style: StyleConfig
    lm: LMConfig
    seed: int = 0  # seed of the deterministic random init used when no weights exist
    # start-up control values a trained checkpoint documents (e.g. the guidance that measured best);
    # a tuple of (name, value) pairs so the config stays hashable
    control_defaults: tuple = ()

    def __post_init__(self):
        if self.lm.levels > self.codec.levels:
            raise ValueError(f"lm.levels {self.lm.levels} exceeds codec.levels {self.codec.levels}")
        if self.lm.style_levels > self.style.levels:
            raise ValueError(
                f"lm.style_levels {self.lm.style_levels} exceeds style.levels {self.style.levels}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SystemConfig":
        try:
            return cls(name=d["name"], seed=d.get("seed", 0),
                       control_defaults=tuple((str(k), float(v)) for k, v in d.get("control_defaults", ())),
                       codec=CodecConfig(**d["codec"]),
                       style=StyleConfig(**d["style"]), lm=LMConfig(**d["lm"]))
        except (KeyError, TypeError) as err:
            raise ValueError(f"invalid model config: {err}") from err


def tiny() -> SystemConfig:
    """The shipped default: streams in real time on 2 CPU cores (see bench/bench_generator.py).

    The LM generates 4 of the codec's 8 levels: on held-out renders and real music the trained codec
    decodes 4 levels exactly as well as 8 (bench/quality_codec.py), so levels 5-8 would only cost
    compute and model capacity."""
    return SystemConfig(name="tiny", codec=CodecConfig(), style=StyleConfig(), lm=LMConfig(levels=4))


def test() -> SystemConfig:
    """d64-sized everything: for unit tests (compiles in about a second)."""
    return SystemConfig(
        name="test",
        codec=CodecConfig(width=64, latent_dim=32, levels=4, dec_conv_blocks=1, dec_frame_blocks=1,
                          enc_blocks=1),
        style=StyleConfig(dim=64, levels=6, audio_width=64, n_mels=32),
        lm=LMConfig(levels=4, style_levels=4, d_model=64, layers=2, heads=2, ffn=128, window=16,
                    depth_d_model=64, depth_layers=1, depth_heads=2, depth_ffn=128),
    )


def mrt2_small() -> SystemConfig:
    """Shaped like Magenta RT 2 ``mrt2_small`` (~230M): random weights, for GPU speed benchmarks."""
    return SystemConfig(
        name="mrt2_small",
        codec=CodecConfig(width=512, latent_dim=256, levels=12, dec_conv_blocks=4, dec_frame_blocks=3),
        style=StyleConfig(dim=768, levels=12),
        lm=LMConfig(levels=12, style_levels=12, d_model=1024, layers=12, heads=8, ffn=4096, window=41,
                    depth_d_model=768, depth_layers=2, depth_heads=6, depth_ffn=3072),
    )


def mrt2_base() -> SystemConfig:
    """Shaped like Magenta RT 2 ``mrt2_base`` (~2.4B): random weights, for GPU speed benchmarks."""
    return SystemConfig(
        name="mrt2_base",
        codec=CodecConfig(width=512, latent_dim=256, levels=12, dec_conv_blocks=4, dec_frame_blocks=3),
        style=StyleConfig(dim=768, levels=12),
        lm=LMConfig(levels=12, style_levels=12, d_model=3072, layers=20, heads=24, ffn=8192, window=25,
                    depth_d_model=1024, depth_layers=6, depth_heads=8, depth_ffn=4096),
    )


PRESETS = {"tiny": tiny, "test": test, "mrt2_small": mrt2_small, "mrt2_base": mrt2_base}


def preset(name: str) -> SystemConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
