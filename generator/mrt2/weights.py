"""Reading the official ``mrt2_{small,base}.safetensors`` into jamgen's native modules.

Why a name table instead of loading the package's Flax tree: the native modules are laid out for
streaming (one ``Attention`` per sub-layer, ring-buffer caches), not like ``sequence_layers``'
combinators, so each native parameter names the one official tensor it is (:func:`official_name`).
The file is opened lazily (``safetensors.safe_open``): only the tensors the engine uses are read,
and each is checked for presence and shape before anything is compiled, so a truncated download or
a file of the other size fails with one line naming the tensor (:class:`CheckpointError`).

File layout (``magenta_rt.jax.system._load_jax_weights``): flat keys joined by ``/``, rooted at
``params/depthformer/...`` (the language model) and ``params/soundstream/...`` (the codec).
"""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np
from flax import nnx

LM_ROOT = "params/depthformer/"
CODEC_ROOT = "params/soundstream/"
_ENC = LM_ROOT + "encoder/body/"
_MULAN = _ENC + "layers_1/branched_mulan_embedder/mulan_embedder/"
_DEC = LM_ROOT + "decoder/"
_TOP = {
    "musiccoca_table": _MULAN + "mulan_dequantizer/embedding",
    "musiccoca_proj": _MULAN + "depth_input_adapter/kernel",
    "regular_table": _ENC + "layers_1/branched_regular_embedder/regular_embedder/embedding",
    "encoder_ln_scale": _ENC + "encoder_ln/scale",
    "encoder_ln_bias": _ENC + "encoder_ln/bias",
    "embedding": _DEC + "decoder_embedding/embedding/embedding",
    "depth_adapter": _DEC + "depth_body/depth_input_adapter/kernel",
    "final_ln_scale": _DEC + "depth_body/final_ln/scale",
    "final_ln_bias": _DEC + "depth_body/final_ln/bias",
    "to_logits": _DEC + "depth_body/to_logits/kernel",
    "to_logits_bias": _DEC + "depth_body/to_logits/bias",
}
_SUBLAYER = {"self_attn": "self_attention", "cross_attn": "cross_attention", "ffn": "ffn"}
_LEAF = {
    "pre_norm": "pre_norm/scale", "post_norm": "post_norm/scale",
    "query": "attention/query_projection/kernel", "key": "attention/key_projection/kernel",
    "value": "attention/value_projection/kernel", "per_dim_scale": "attention/per_dim_scale",
    "sink_key": "attention/sink_key_embeddings", "sink_value": "attention/sink_value_embeddings",
    "out": "output_projection/kernel",
    "w1": "ffn_layer1/kernel", "b1": "ffn_layer1/bias", "w2": "ffn_layer2/kernel", "b2": "ffn_layer2/bias",
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: one line naming the file and the tensor."""


def official_name(path: tuple) -> str:
    """The official tensor behind a native parameter path, e.g. ``('temporal', 'blocks', 0,
    'self_attn', 'query')`` -> ``params/depthformer/decoder/temporal_body/transformer/x_layers_0/
    self_attention/attention/query_projection/kernel``."""
    if len(path) == 1:
        return _TOP[path[0]]
    stack, _, index, sub, leaf = path
    body = {"temporal": "temporal_body", "depth": "depth_body"}[stack]
    return f"{_DEC}{body}/transformer/x_layers_{index}/{_SUBLAYER[sub]}/{_LEAF[leaf]}"


class Checkpoint:
    """A lazily opened official checkpoint; :meth:`tensor` reads one tensor, checked."""

    def __init__(self, path):
        from safetensors import safe_open

        self.path = pathlib.Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"checkpoint {self.path} does not exist")
        try:
            self._file = safe_open(str(self.path), framework="numpy")
            self.names = set(self._file.keys())
        except Exception as err:  # safetensors raises its own error types; one line either way
            raise CheckpointError(f"{self.path} is not a readable safetensors file "
                                  f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None

    def shape(self, name: str) -> tuple:
        if name not in self.names:
            raise CheckpointError(f"{self.path.name} lacks tensor {name} (an incomplete or different checkpoint)")
        return tuple(self._file.get_slice(name).get_shape())

    def tensor(self, name: str, shape: tuple) -> np.ndarray:
        got = self.shape(name)
        if got != tuple(shape):
            raise CheckpointError(f"{self.path.name}: tensor {name} has shape {list(got)}, expected {list(shape)} "
                                  "(a checkpoint of another size?)")
        return self._file.get_tensor(name)


def fill(abstract: nnx.Module, ckpt: Checkpoint, name_of=official_name, dtype=jnp.float32) -> tuple:
    """(graphdef, state) of ``abstract`` (built under ``nnx.eval_shape``) with every parameter read
    from ``ckpt``: all shapes are checked first, then tensors are read one at a time."""
    graph, state = nnx.split(abstract)
    flat = nnx.to_flat_state(state)
    wanted = [(path, name_of(path), tuple(var.shape)) for path, var in flat]
    for _, name, shape in wanted:  # every check before the first (slow) read
        if ckpt.shape(name) != shape:
            ckpt.tensor(name, shape)  # raises the one-line error
    for (path, var), (_, name, shape) in zip(flat, wanted):
        var.set_value(jnp.asarray(ckpt.tensor(name, shape), dtype))
    return graph, nnx.from_flat_state(flat)
