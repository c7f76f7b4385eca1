"""From MRT2's tokens to 48 kHz stereo: the residual vector quantizer and the SpectroStream decoder.

The RVQ is native (a frame's embedding is the sum of one 256-d codebook row per level; only the first
12 of the checkpoint's 64 codebooks are read, ``ResidualVectorQuantizer.codes_to_embeddings``). The
decoder (a causal 2-D conv stack over 480 frequency bins, then a causal inverse STFT; 4 STFT hops of
480 samples per 40 ms frame) is the package's own ``sequence_layers`` network, stepped inside jamgen's
compiled block (no host sync, donated state) with its weights read from the same checkpoint: porting
its streaming conv-transpose and overlap-add buffers is the next step (see docs/models.md).

Audio is ``clip(0.5 * x, -1, 1)`` in float32: the package's gain before its int16 conversion, without
the int16 rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from generator.mrt2.weights import CODEC_ROOT, Checkpoint, CheckpointError

QUANTIZER = CODEC_ROOT + "quantizer/embedding"
DECODER_ROOT = CODEC_ROOT + "decoder/"
EMBEDDING_DIM, CODEBOOK, GAIN = 256, 1024, 0.5


def rvq_embeddings(table, codes):
    """codes [..., L] (0..1023) -> the sum of level l's row codes[..., l] of table [L, 1024, 256]."""
    levels = codes.shape[-1]
    return sum(jnp.take(table[l], codes[..., l], axis=0) for l in range(levels))


class SpectroStreamDecoder:
    """The checkpoint's codec, as ``init_state(params, batch)`` and ``decode(params, state, codes)``."""

    def __init__(self, levels: int = 12):
        import magenta_rt  # noqa: F401  (puts the vendored sequence_layers on sys.path)
        import sequence_layers.jax as sl
        from magenta_rt.jax import spectrostream

        self._sl = sl
        self.levels = levels
        self._module = spectrostream.stft_spectrostream_40ms_generic_48khz_stereo_config(
            rvq_truncation_level=levels, use_unique_codes=False).make()
        self._spec = sl.ChannelSpec((EMBEDDING_DIM,), jnp.float32)

    def _layer_state(self, m, batch):
        return m.embeddings_to_waveform_layer.get_initial_state(batch, self._spec, training=False)

    def expected_shapes(self) -> dict[str, tuple]:
        """Every decoder tensor the network needs, ``/``-joined under ``params/soundstream/decoder/``."""
        import flax.traverse_util as traverse_util

        def init(m, x):
            return m.embeddings_to_waveform_layer.step(x, self._layer_state(m, 1), training=False)

        x = self._sl.Sequence.from_values(jnp.zeros((1, 1, EMBEDDING_DIM)))
        from flax.core import meta

        shapes = jax.eval_shape(lambda k: meta.unbox(self._module.init(k, x, method=init)), jax.random.PRNGKey(0))
        flat = traverse_util.flatten_dict(shapes["params"], sep="/")
        return {DECODER_ROOT + k.removeprefix("decoder/"): tuple(v.shape) for k, v in flat.items()
                if k.startswith("decoder/")}

    def read(self, ckpt: Checkpoint) -> dict:
        """The codec's parameters from ``ckpt``, every shape checked before the first read."""
        import flax.traverse_util as traverse_util

        shapes = self.expected_shapes()
        quant = ckpt.shape(QUANTIZER)
        if quant != (64, CODEBOOK, EMBEDDING_DIM):
            raise CheckpointError(f"{ckpt.path.name}: tensor {QUANTIZER} has shape {list(quant)}, "
                                  f"expected [64, {CODEBOOK}, {EMBEDDING_DIM}]")
        for name, shape in shapes.items():
            if ckpt.shape(name) != shape:
                ckpt.tensor(name, shape)  # raises the one-line error
        decoder = traverse_util.unflatten_dict(
            {tuple(n[len(CODEC_ROOT):].split("/")): jnp.asarray(ckpt.tensor(n, s)) for n, s in shapes.items()})
        # All 64 codebooks: the package's module checks the table's shape; only the first 12 are read.
        return {"quantizer": jnp.asarray(ckpt.tensor(QUANTIZER, quant)), "network": decoder}

    def _variables(self, params):
        # SpectroStream's setup touches its quantizer, so the (truncated) table goes in too.
        return {"params": {**params["network"], "quantizer": {"embedding": params["quantizer"]}}}

    def init_state(self, params, batch: int):
        return self._module.apply(self._variables(params), batch, method=self._layer_state)

    def decode(self, params, state, codes):
        """codes [F, B, L] -> (audio [B, F * 1920, 2] float32, state)."""
        emb = rvq_embeddings(params["quantizer"][: self.levels], jnp.swapaxes(codes, 0, 1))  # [B, F, 256]

        def step(m, x, s):
            return m.embeddings_to_waveform_layer.step(x, s, training=False)

        out, state = self._module.apply(self._variables(params), self._sl.Sequence.from_values(emb),
                                        state, method=step)
        audio = jnp.where(out.mask[..., None], out.values, 0.0).astype(jnp.float32)
        return jnp.clip(GAIN * audio, -1.0, 1.0), state


def package_samples_to_float(samples_int16) -> np.ndarray:
    """The package's int16 output as jamgen floats (the adapter's scale), for comparisons."""
    return np.asarray(samples_int16, np.float32) / 32768.0
