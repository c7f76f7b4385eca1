"""The shapes of Magenta RealTime 2's language model, as data.

Why a table of our own rather than ``magenta_rt.jax.model``: the native engine must load and run
without importing the package's Flax/sequence_layers graph, and a checkpoint is checked against these
numbers tensor by tensor before anything is compiled. The presets copy the package's ``ModelSpec``s
(``magenta_rt/config.py``: ``S``, ``L_TPU_OPTIMIZED``, ``M_SHALLOW_TPU_OPTIMIZED`` for small;
``L_SHALLOW_TPU_OPTIMIZED``, ``XXL_SHALLOW``, ``L_SHALLOW_TPU_OPTIMIZED_6`` for base) and the
horizons of ``MagentaRT2ModelSmall`` / ``MagentaRT2ModelBase``; ``test`` is the adapter's tiny shape
(``generator.backends.magenta_rt2._TestShape``), so parity can run in seconds on a CPU.

Token layout (package: ``TokensConfig.vocab_size``, ``convert_from_unique_codes``): output id =
6 reserved ids + level * 1024 + code; id 0 is the start-of-stream frame. Conditioning ids are the
package's values + 7 (6 reserved ids and a dropout id), so masked (-1) is id 6.
"""

from __future__ import annotations

import dataclasses

RESERVED = 6           # NUM_RESERVED_TOKENS
COND_OFFSET = RESERVED + 1  # + the dropout token: conditioning id = value + 7
SOS_ID = 0
# The conditioning channels in the package's order (MagentaRT2ModelBase.input_configs):
# (name, channels, per-channel vocabulary = codebook + reserved (+1 dropout)).
MUSICCOCA_LEVELS, MUSICCOCA_VOCAB, MUSICCOCA_DIM = 12, 1024 + RESERVED + 1, 768
REGULAR_CHANNELS = (("pianoroll_with_onsets_tokens", 128, 4 + RESERVED + 1),
                    ("drum_pianoroll_tokens", 1, 2 + RESERVED + 1),
                    ("cfg_conditioning_tokens", 2, 41 + RESERVED),
                    ("cfg_conditioning_drums_tokens", 1, 9 + RESERVED))


@dataclasses.dataclass(frozen=True, slots=True)
class Stack:
    """One transformer stack: ``layers`` blocks of width ``dim`` with ``heads`` x ``head_dim`` attention."""

    layers: int
    dim: int
    ffn: int
    heads: int
    head_dim: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MRT2Config:
    """An MRT2 language model. Derived sizes are properties, as in the package's ``TokensConfig``."""

    name: str
    encoder_dim: int       # width of the conditioning embedding (the encoder body is the identity)
    temporal: Stack        # once per 40 ms frame; self-attention and cross-attention to the conditioning
    depth: Stack           # once per RVQ level within a frame
    horizon: int           # past frames seen by temporal self- and cross-attention (plus the current one)
    levels: int = 12       # RVQ levels generated per frame
    codebook: int = 1024
    sinks: int = 1         # attention-sink key/value pairs per temporal attention
    logit_cap: float = 30.0

    def __post_init__(self):
        if self.sinks not in (0, 1):
            raise ValueError(f"sinks must be 0 or 1, not {self.sinks}")

    @property
    def vocab(self) -> int:
        """Output ids: reserved ids + one block of ``codebook`` per level (12294 for MRT2)."""
        return RESERVED + self.levels * self.codebook

    @property
    def regular_embeddings(self) -> int:
        """Rows of the non-MusicCoCa conditioning table, rounded up to 128 as the package does."""
        n = sum(c * v for _, c, v in REGULAR_CHANNELS)
        return (n + 127) // 128 * 128

    @property
    def cond_channels(self) -> int:
        return MUSICCOCA_LEVELS + sum(c for _, c, _ in REGULAR_CHANNELS)  # 144

    @property
    def window(self) -> int:
        """Ring-buffer slots of a temporal KV cache: the horizon plus the current frame."""
        return self.horizon + 1


PRESETS: dict[str, MRT2Config] = {
    "small": MRT2Config(name="small", encoder_dim=256, temporal=Stack(12, 1024, 4096, 8, 128),
                        depth=Stack(2, 768, 3072, 6, 128), horizon=41),
    "base": MRT2Config(name="base", encoder_dim=1024, temporal=Stack(20, 3072, 8192, 24, 128),
                       depth=Stack(6, 1024, 4096, 8, 128), horizon=25),
    "test": MRT2Config(name="test", encoder_dim=64, temporal=Stack(2, 64, 128, 2, 32),
                       depth=Stack(1, 64, 128, 2, 32), horizon=8),
}
# The official file of each preset (<MAGENTA_HOME>/magenta-rt-v2/checkpoints/<file>.safetensors).
OFFICIAL_NAMES = {"small": "mrt2_small", "base": "mrt2_base"}
