"""Codec quality on held-out renders, side by side with Opus and a 4 kHz low-pass (prints a table).

Why a script and not a test: these are measurements to compare across training runs, not pass/fail
checks. Metrics (as in ``shared/research/codec-probe.md``, on the whole clip minus 40 ms at each end):

* mel dB: mean |difference| of 10*log10 128-band mel power (n_fft 2048, hop 512), both floored 80 dB
  below the reference's peak;
* MR-STFT: mean |difference| of ln-magnitude (floor 1e-5) over n_fft 512/1024/2048 (hop n_fft/4);
* SC: spectral convergence at n_fft 1024.

Opus runs through Debian's ``opusenc --bitrate N --hard-cbr`` / ``opusdec``; its kbps is measured from
the file size (Ogg overhead included). The codec's bitrate is levels x 10 bits x 25 frames/s.

    .venv/bin/python bench/quality_codec.py --codec runs/codec/rvq --data runs/codec_data
    .venv/bin/python bench/quality_codec.py --codec runs/codec/rvq2 --levels 8,4,1 --real 12   # + real music

``--real N`` adds a second table on N 10 s excerpts of real recorded game music (copyleft Debian packages,
see ``bench/real_music.py``; evaluation only, never training); ``--real-only`` skips the renders.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

SR = 48_000
EDGE = 1920


# ---- metrics ----------------------------------------------------------------------------------
def _spec(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """x [N, C] -> |STFT| [C, frames, bins]."""
    x = x.T
    n = (x.shape[-1] - n_fft) // hop + 1
    idx = np.arange(n)[:, None] * hop + np.arange(n_fft)[None]
    return np.abs(np.fft.rfft(x[:, idx] * np.hanning(n_fft), axis=-1))


def _mel_fb(n_mels: int = 128, n_fft: int = 2048) -> np.ndarray:
    def hz2mel(f):
        return 2595 * np.log10(1 + f / 700)

    pts = 700 * (10 ** (np.linspace(hz2mel(20), hz2mel(SR / 2), n_mels + 2) / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / SR)
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, c, hi = pts[m:m + 3]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb


MEL = _mel_fb()


def mel_db(ref: np.ndarray, out: np.ndarray) -> float:
    a = 10 * np.log10(MEL @ (_spec(ref, 2048, 512) ** 2).transpose(0, 2, 1) + 1e-12)
    b = 10 * np.log10(MEL @ (_spec(out, 2048, 512) ** 2).transpose(0, 2, 1) + 1e-12)
    floor = a.max() - 80
    return float(np.abs(np.maximum(a, floor) - np.maximum(b, floor)).mean())


def mrstft(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.mean([np.abs(np.log(_spec(ref, n, n // 4) + 1e-5) - np.log(_spec(out, n, n // 4) + 1e-5)).mean()
                          for n in (512, 1024, 2048)]))


def sc(ref: np.ndarray, out: np.ndarray) -> float:
    a, b = _spec(ref, 1024, 256), _spec(out, 1024, 256)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-9))


def score(refs, outs) -> dict:
    rows = []
    for r, o in zip(refs, outs):
        n = min(len(r), len(o))
        r, o = r[EDGE:n - EDGE], o[EDGE:n - EDGE]
        rows.append((mel_db(r, o), mrstft(r, o), sc(r, o), np.sqrt((o ** 2).mean() / max((r ** 2).mean(), 1e-12))))
    m = np.mean(rows, axis=0)
    return {"mel_db": m[0], "mrstft": m[1], "sc": m[2], "rms_ratio": m[3]}


# ---- systems ----------------------------------------------------------------------------------
def opus(clips, kbps: float):
    import soundfile as sf

    outs, nbytes = [], 0
    with tempfile.TemporaryDirectory() as d:
        for i, c in enumerate(clips):
            wav, enc, dec = (f"{d}/{i}.wav", f"{d}/{i}.opus", f"{d}/{i}.dec.wav")
            sf.write(wav, c, SR, subtype="PCM_16")
            subprocess.run(["opusenc", "--quiet", "--bitrate", str(kbps), "--hard-cbr", wav, enc], check=True)
            subprocess.run(["opusdec", "--quiet", "--rate", str(SR), enc, dec], check=True)
            nbytes += pathlib.Path(enc).stat().st_size
            outs.append(sf.read(dec, dtype="float32", always_2d=True)[0])
    return outs, nbytes * 8 / 1000 / (sum(len(c) for c in clips) / SR)


def lowpass(clips, hz: float = 4000):
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, hz, fs=SR, output="sos")
    return [sosfiltfilt(sos, c, axis=0).astype(np.float32) for c in clips]


def load_codec(path, preset_name: str):
    from flax import nnx

    from generator.audio import checkpoint
    from generator.core.checkpoint import assign
    from generator.audio.codec import Codec
    from generator.audio.config import preset

    if path is None:
        return Codec(preset(preset_name).codec, rngs=nnx.Rngs(preset(preset_name).seed))
    p = pathlib.Path(path)
    cfg = checkpoint.read_config(p)[0].codec if (p / "config.json").is_file() else preset(preset_name).codec
    codec = nnx.eval_shape(lambda: Codec(cfg, rngs=nnx.Rngs(0)))
    from safetensors.numpy import load_file

    assign(codec, load_file(str(p / "codec.safetensors")), str(p))
    return codec


def codec_outputs(codec, clips, levels: int | None):
    """levels None: continuous latents (no quantizer)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    @nnx.jit
    def cont(c, x):
        st = c.init_decoder_state(1)
        spec, _ = c.latents_to_spec(c.embed(x), st["conv"])
        return c.spec_to_audio(spec, st["tail"])[0]

    enc = nnx.jit(lambda c, x: c.encode(x))
    dec = nnx.jit(lambda c, t: c.decode(t))
    outs = []
    for clip in clips:
        x = jnp.asarray(clip[None, : len(clip) // 1920 * 1920])
        if levels is None:
            y = cont(codec, x)
        else:
            y = dec(codec, enc(codec, x)[..., :levels])
        outs.append(np.asarray(jax.device_get(y))[0])
    return outs


def evaluate(clips, codecs, a, label: str, tag: str) -> list[dict]:
    """Score every system on ``clips`` and print one table headed by ``label``; rows carry ``set=tag``."""
    print(label)
    print(f"{len(clips)} clips, {sum(len(c) for c in clips) / SR / 60:.1f} min, 48 kHz stereo")
    rows = []

    def add(name, kbps, outs):
        r = {"set": tag, "system": name, "kbps": kbps, **score(clips, outs)}
        rows.append(r)
        print(f"{name:34s} {'-' if kbps is None else f'{kbps:5.2f}':>6} {r['mel_db']:7.2f} {r['mrstft']:7.3f} "
              f"{r['sc']:6.3f} {r['rms_ratio']:6.2f}", flush=True)

    print(f"{'system':34s} {'kbps':>6} {'mel dB':>7} {'MRSTFT':>7} {'SC':>6} {'RMS':>6}")
    for name, codec in codecs:
        if a.continuous:
            add(f"codec {name} continuous z", None, codec_outputs(codec, clips, None))
        for lv in (int(x) for x in a.levels.split(",")):
            if lv <= codec.cfg.levels:
                add(f"codec {name} {lv} levels", lv * 10 * 25 / 1000, codec_outputs(codec, clips, lv))
    for kbps in (float(x) for x in a.opus.split(",") if x):
        outs, real = opus(clips, kbps)
        add(f"opus {kbps:g} hard-CBR", real, outs)
    add("low-pass 4 kHz (Butterworth 8)", None, lowpass(clips))
    add("silence", 0.0, [np.zeros_like(c) for c in clips])
    print(flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", action="append", default=[],
                    help="run or checkpoint directory with codec.safetensors (repeatable); 'untrained' = seeded init")
    ap.add_argument("--data", default="runs/codec_data")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--items", type=int, default=18, help="held-out clips (10 s each)")
    ap.add_argument("--levels", default="8,4,2,1", help="RVQ prefixes to decode")
    ap.add_argument("--continuous", action="store_true", help="also decode unquantized latents")
    ap.add_argument("--opus", default="2,6,12", help="Opus target kbps (hard CBR)")
    ap.add_argument("--real", type=int, default=0, metavar="N",
                    help="also score N 10 s excerpts of real recorded music from Debian packages "
                         "(bench/real_music.py; evaluation only)")
    ap.add_argument("--real-only", action="store_true", help="with --real: skip the held-out renders")
    ap.add_argument("--real-offset", type=float, default=30.0, help="excerpt start within each track (s)")
    ap.add_argument("--json", default=None, help="also write the rows here (each row has set: heldout|real)")
    a = ap.parse_args(argv)
    if a.real_only and a.real <= 0:
        ap.error("--real-only needs --real N")

    sets = []  # (label, tag, clips)
    if a.real > 0:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
        import real_music

        try:
            ex = real_music.excerpts(a.real, 10.0, a.real_offset)
        except real_music.NoRealMusic as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if len(ex) < a.real:
            print(f"warning: only {len(ex)} real-music excerpts available (asked for {a.real})", file=sys.stderr)
        real_label = f"== {real_music.describe(ex)} (10 s from {a.real_offset:g} s into each track) =="
    if not a.real_only:
        h = np.load(pathlib.Path(a.data) / "heldout.npy", mmap_mode="r")
        clips = [np.asarray(h[i], np.float32) / 32768 for i in range(min(a.items, len(h)))]
        sets.append((f"== held-out renders: {pathlib.Path(a.data) / 'heldout.npy'} (synthetic, rendered in-house) ==",
                     "heldout", clips))
    if a.real > 0:
        sets.append((real_label, "real", [e.audio for e in ex]))

    codecs = []
    for spec in a.codec or ["untrained"]:
        codec = load_codec(None if spec == "untrained" else spec, a.preset)
        codecs.append(("untrained" if spec == "untrained" else pathlib.Path(spec).name, codec))
    rows = []
    for label, tag, clips in sets:
        rows += evaluate(clips, codecs, a, label, tag)
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
