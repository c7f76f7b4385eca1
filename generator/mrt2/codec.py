"""From MRT2's tokens to 48 kHz stereo, natively: the residual vector quantizer and SpectroStream's decoder.

Why each step is what it is (``magenta_rt.jax.spectrostream``, 40 ms 48 kHz stereo config, as stepped by
``sequence_layers``; the streaming rules below are that library's, reproduced exactly):

- **RVQ**: a frame's 256-d embedding is the sum of one codebook row per level (the first 12 of the
  checkpoint's 64 codebooks).
- **Input layer**: 1x1 convolutions (``conv1x1_first`` + ``conv1x1_b2(elu(conv1x1_b1(x)))``) to 2560
  channels, reshaped to 5 frequency bins x 512.
- **Causal 2-D convolutions** ("semicausal" time padding, stride 1): each keeps its last ``k - 1``
  *activated* inputs (ELU comes before every conv) and zero-pads frequency symmetrically.
- **Transpose convolutions** up-sample time (x2 twice: 4 STFT hops per 40 ms frame) and frequency
  (5 -> 480 bins). A step computes the "valid" transpose convolution of its inputs (``lax`` input
  dilation, kernel as stored: not flipped), adds the ``k - stride`` overlapping outputs carried from
  the previous step, emits ``stride * T`` outputs and carries the rest; the bias is added after.
  Each residual block's shortcut is a 1x1 conv (when widths differ) then nearest up-sampling.
- **Two channel groups**: after ``decoder_0`` the 1024 channels split into two halves run through the
  same weights (``ParallelChannels``); each ends in 2 channels (one complex spectrum: real, imaginary),
  so group 0 is the left channel and group 1 the right. Here the halves share one batch.
- **Lookahead** drops the first 4 hops of a stream (its first 40 ms frame is silent), then a **causal
  inverse STFT**: 481 bins (the 480 + a zero Nyquist bin), ``irfft`` of 960, the inverse-Hann window
  (``tf.signal.inverse_stft_window_fn``), overlap-add by 480 with the half frame carried.

Audio is ``clip(0.5 * x, -1, 1)`` in float32: the package's gain before its int16 conversion, without
the int16 rounding. Shapes: B batch, T time steps, F frequency bins, C channels (``NHWC`` = B T F C).
"""

from __future__ import annotations

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from generator.mrt2.weights import CODEC_ROOT, Checkpoint, CheckpointError

QUANTIZER = CODEC_ROOT + "quantizer/embedding"
DECODER_ROOT = CODEC_ROOT + "decoder/"
EMBEDDING_DIM, CODEBOOK, QUANTIZERS, GAIN = 256, 1024, 64, 0.5
INPUT_BINS, INPUT_CHANNELS = 5, 512
HOP, FFT = 480, 960
LOOKAHEAD_HOPS = 4  # decoder_lookahead 1 frame x the total time stride 4
# The up-sampling residual blocks: (name, time/freq strides, transpose kernel, in, out channels).
BLOCKS = (("decoder_0", (2, 1), (4, 3), 512, 1024),
          ("decoder_1", (2, 2), (4, 4), 512, 256),
          ("decoder_2", (1, 2), (3, 4), 256, 256),
          ("decoder_3", (1, 2), (3, 4), 256, 256),
          ("decoder_4", (1, 3), (3, 6), 256, 128),
          ("decoder_5", (1, 2), (3, 4), 128, 128),
          ("decoder_6", (1, 2), (3, 4), 128, 64))
GROUPED_FROM = 1  # decoder_1.. and the output layer run per channel group (2 groups, shared weights)
OUTPUT_KERNEL, OUTPUT_CHANNELS = (7, 7), 2


def _shapes() -> dict[str, tuple]:
    """Every decoder tensor (under ``params/soundstream/decoder/``) and its shape."""
    convs = {"input_layer/conv1x1_first": (1, 1, EMBEDDING_DIM, 2560),
             "input_layer/shortcut_layer/conv1x1_b1": (1, 1, EMBEDDING_DIM, 2560),
             "input_layer/shortcut_layer/conv1x1_b2": (1, 1, 2560, 2560),
             "input_layers_residual_unit/conv2d_3x3_a": (3, 3, 512, 512),
             "input_layers_residual_unit/conv2d_3x3": (3, 3, 512, 512),
             "output_layer/base_conv_last": OUTPUT_KERNEL + (64, OUTPUT_CHANNELS)}
    for name, _, (kt, kf), cin, cout in BLOCKS:
        convs[f"{name}/conv2dtranspose_{kt}x{kf}"] = (kt, kf, cin, cout)
        convs[f"{name}/conv2d_3x3"] = (3, 3, cout, cout)
        if cin != cout:
            convs[f"{name}/shortcut_layer/conv1x1"] = (1, 1, cin, cout)
    out = {}
    for name, shape in convs.items():
        out[f"{DECODER_ROOT}{name}/conv/kernel"] = shape
        out[f"{DECODER_ROOT}{name}/conv/bias"] = shape[-1:]
    return out


def inverse_hann_window() -> np.ndarray:
    """``tf.signal.inverse_stft_window_fn(480, hann_window)(960)``: periodic Hann over the sum of squares."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FFT) / FFT)).astype(np.float32)
    overlaps = -(-FFT // HOP)
    denom = np.square(window).reshape(overlaps, HOP).sum(0, keepdims=True)
    denom = np.tile(denom, (overlaps, 1)).reshape(-1)[:FFT]
    return np.where(denom == 0, 0, window / denom).astype(np.float32)


def rvq_embeddings(table, codes):
    """codes [..., L] (0..1023) -> the sum of level l's row codes[..., l] of table [>= L, 1024, 256]."""
    out = jnp.take(table[0], codes[..., 0], axis=0)
    for l in range(1, codes.shape[-1]):
        out = out + jnp.take(table[l], codes[..., l], axis=0)
    return out


def _conv(x, p, freq_pad):
    """A stride-1 convolution over x [B, T', F, C] whose time axis already holds the ``k - 1`` history."""
    y = jax.lax.conv_general_dilated(x, p["kernel"].astype(x.dtype), (1, 1), ((0, 0), freq_pad),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["bias"].astype(x.dtype)


def causal_conv(x, p, buffer):
    """``elu``-activated x [B, T, F, C] through a causal conv with its carried inputs [B, k-1, F, C]."""
    kt, kf = p["kernel"].shape[:2]
    pad = kf - 1
    if kt == 1:
        return _conv(x, p, (pad // 2, pad - pad // 2)), buffer
    full = jnp.concatenate([buffer, x], axis=1)
    return _conv(full, p, (pad // 2, pad - pad // 2)), full[:, -(kt - 1):]


def transpose_conv(x, p, strides, carry):
    """Streaming transpose conv of x [B, T, F, C]; ``carry`` [B, k - stride, F * sf, C'] overlapping outputs."""
    (kt, kf), (st, sf) = p["kernel"].shape[:2], strides
    time_pad = (kt - 1, kt + st - 2 + max(kt - st, 0) - (kt - 1))           # "valid", as stepped
    amount = kf + sf - 2                                                     # frequency: "same"
    left = kf - 1 if sf > kf - 1 else int(np.ceil(amount / 2))
    y = jax.lax.conv_general_dilated(x, p["kernel"].astype(x.dtype), (1, 1), (time_pad, (left, amount - left)),
                                     lhs_dilation=(st, sf), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    width = kt - st
    y = y + jnp.pad(carry, ((0, 0), (0, y.shape[1] - width), (0, 0), (0, 0)))
    out, carry = y[:, : st * x.shape[1]], y[:, st * x.shape[1]:]
    return out + p["bias"].astype(x.dtype), carry


def _block(x, p, state, name, strides, kernel, cin, cout):
    kt, kf = kernel
    y, state[f"{name}/t"] = transpose_conv(jax.nn.elu(x), p[f"conv2dtranspose_{kt}x{kf}"]["conv"], strides,
                                           state[f"{name}/t"])
    y, state[f"{name}/c"] = causal_conv(jax.nn.elu(y), p["conv2d_3x3"]["conv"], state[f"{name}/c"])
    short = x if cin == cout else causal_conv(x, p["shortcut_layer"]["conv1x1"]["conv"], None)[0]
    short = jnp.repeat(jnp.repeat(short, strides[0], axis=1), strides[1], axis=2)
    return y + short


class SpectroStreamDecoder:
    """The checkpoint's codec: ``read(ckpt)`` -> params; ``init_state(params, batch)``;
    ``decode(params, state, codes [F, B, 12]) -> (audio [B, F * 1920, 2], state)``, all pure JAX."""

    def __init__(self, levels: int = 12):
        self.levels = levels
        self._window = inverse_hann_window()

    @staticmethod
    def expected_shapes() -> dict[str, tuple]:
        return {**_shapes(), QUANTIZER: (QUANTIZERS, CODEBOOK, EMBEDDING_DIM)}

    def read(self, ckpt: Checkpoint) -> dict:
        """The codec's parameters from ``ckpt``, every shape checked before the first read."""
        shapes = self.expected_shapes()
        for name, shape in shapes.items():
            if ckpt.shape(name) != shape:
                ckpt.tensor(name, shape)  # raises the one-line error
        tree = traverse_util.unflatten_dict({tuple(n[len(DECODER_ROOT):].split("/")): jnp.asarray(ckpt.tensor(n, s))
                                             for n, s in shapes.items() if n.startswith(DECODER_ROOT)})
        return {"quantizer": jnp.asarray(ckpt.tensor(QUANTIZER, shapes[QUANTIZER])[: self.levels]),
                "network": tree}

    def init_state(self, params, batch: int) -> dict:
        """Zero history everywhere (what the package's initial state holds); ``params`` only for dtypes."""
        dtype = params["quantizer"].dtype
        z = lambda *shape: jnp.zeros(shape, dtype)  # noqa: E731
        state = {"res_a": z(batch, 2, INPUT_BINS, 512), "res_b": z(batch, 2, INPUT_BINS, 512),
                 "hops": jnp.zeros((), jnp.int32), "ola": jnp.zeros((batch, HOP, 2), jnp.float32)}
        bins = INPUT_BINS
        for i, (name, (st, sf), (kt, _), _, cout) in enumerate(BLOCKS):
            rows = batch * (2 if i >= GROUPED_FROM else 1)
            bins *= sf
            state[f"{name}/t"] = z(rows, kt - st, bins, cout)
            state[f"{name}/c"] = z(rows, 2, bins, cout)
        state["out"] = z(2 * batch, OUTPUT_KERNEL[0] - 1, bins, 64)
        return state

    def decode(self, params, state, codes):
        net, state = params["network"], dict(state)
        batch = codes.shape[1]
        x = rvq_embeddings(params["quantizer"], jnp.swapaxes(codes, 0, 1))[:, :, None, :]   # [B, T, 1, 256]
        first = net["input_layer"]
        short = first["shortcut_layer"]
        y = causal_conv(x, first["conv1x1_first"]["conv"], None)[0] + causal_conv(
            jax.nn.elu(causal_conv(x, short["conv1x1_b1"]["conv"], None)[0]), short["conv1x1_b2"]["conv"], None)[0]
        y = y.reshape(y.shape[:2] + (INPUT_BINS, INPUT_CHANNELS))
        res = net["input_layers_residual_unit"]
        h, state["res_a"] = causal_conv(jax.nn.elu(y), res["conv2d_3x3_a"]["conv"], state["res_a"])
        h, state["res_b"] = causal_conv(jax.nn.elu(h), res["conv2d_3x3"]["conv"], state["res_b"])
        y = y + h
        for i, block in enumerate(BLOCKS):
            if i == GROUPED_FROM:  # two channel halves, one weight set: stack them on the batch axis
                y = jnp.concatenate(jnp.split(y, 2, axis=-1), axis=0)
            y = _block(y, net[block[0]], state, *block)
        y, state["out"] = causal_conv(jax.nn.elu(y), net["output_layer"]["base_conv_last"]["conv"], state["out"])
        spec = jnp.concatenate(jnp.split(y, 2, axis=0), axis=-1).astype(jnp.float32)     # [B, T*4, 480, 4]
        return self._inverse_stft(spec, state, batch)

    def _inverse_stft(self, spec, state, batch):
        hops = spec.shape[1]
        index = state["hops"] + jnp.arange(hops)
        spec = jnp.pad(spec, ((0, 0), (0, 0), (0, 1), (0, 0)))                           # + Nyquist bin
        frames = jnp.fft.irfft(spec[..., 0::2] + 1j * spec[..., 1::2], n=FFT, axis=2)    # [B, hops, 960, 2]
        frames = frames * self._window[None, None, :, None]
        frames = jnp.where((index >= LOOKAHEAD_HOPS)[None, :, None, None], frames, 0.0)
        head, tail = frames[:, :, :HOP], frames[:, :, HOP:]
        prev = jnp.concatenate([state["ola"][:, None], tail[:, :-1]], axis=1)
        audio = (head + prev).reshape(batch, hops * HOP, 2)
        state["ola"], state["hops"] = tail[:, -1], state["hops"] + hops
        return jnp.clip(GAIN * audio, -1.0, 1.0), state
