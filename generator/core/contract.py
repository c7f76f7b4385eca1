"""The small contract between the daemon and any music generator.

The daemon (``bridge.engine``) knows nothing about models: it only calls the methods of
:class:`Generator`, once per block, from one generation thread. Everything a generator needs from
the live controls arrives as one immutable :class:`GenerationControls` per call, so the generator
never reads shared mutable state.

Why a base class and not a Protocol: a generator's optional features (a warm-up, documented start-up
controls, the latency settings it runs safely at, MIDI notes) are declared here with neutral defaults, so the daemon
reads them as plain attributes and never probes with ``getattr``; a wrapper (a remote generator, a
recorder of a generator, a test double) overrides exactly what it changes. Objects written against
the older duck-typed contract are wrapped by :func:`adapt`, the one place that probes.

Audio contract: 48 kHz, stereo, float32 in [-1, 1], ``frames * FRAME_SAMPLES`` samples per call
(one frame = 40 ms = 1920 samples, the 25 Hz token rate of Magenta RT / SpectroStream).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Mapping

import numpy as np

SAMPLE_RATE = 48_000
FRAME_RATE = 25
FRAME_SAMPLES = SAMPLE_RATE // FRAME_RATE  # 1920
CHANNELS = 2


def normalise_prompts(prompts) -> tuple[tuple[str, float], ...]:
    """Active prompts with weights summing to 1: empty texts and weights <= 0 are dropped.

    This is the only place prompt weights are normalised; blending code may rely on it.
    """
    active = [(str(t), float(w)) for t, w in prompts if t and float(w) > 0.0]
    total = sum(w for _, w in active)
    return tuple((t, w / total) for t, w in active)


NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_harmony(text: str) -> tuple[int, ...]:
    """The notes of a ``harmony`` control value, lowest first: MIDI note numbers (``"48 64 67"``) or pitch
    names with optional ``#``/``b`` and octave (``"C3 E G"``, ``"Eb4"``; no octave = octave 4), separated by
    spaces, commas or dashes. Empty text: no harmony.

    Raises:
      ValueError: a word that is neither (one line, naming it).
    """
    notes = []
    for word in text.replace(",", " ").replace("-", " ").split():
        if word.isdigit():
            note = int(word)
        else:
            letter, rest = word[0].upper(), word[1:]
            if letter not in NOTE_NAMES:
                raise ValueError(f"harmony: {word!r} is not a MIDI note number or a pitch name such as C, F#3, Bb")
            shift = 0
            while rest[:1] in ("#", "b"):
                shift += 1 if rest[0] == "#" else -1
                rest = rest[1:]
            if rest and not (rest.isdigit() or (rest[0] == "-" and rest[1:].isdigit())):
                raise ValueError(f"harmony: {word!r} is not a MIDI note number or a pitch name such as C, F#3, Bb")
            note = 12 * (int(rest) + 1 if rest else 5) + NOTE_NAMES[letter] + shift
        if not 0 <= note <= 127:
            raise ValueError(f"harmony: note {word!r} is outside MIDI's 0..127")
        notes.append(note)
    return tuple(sorted(set(notes)))


@dataclasses.dataclass(frozen=True)
class MusicalPosition:
    """Where an external clock (the DAW's JACK transport, MIDI clock, Link) puts a block's first sample.

    Attributes:
      beat: quarter-note beats since bar 1 beat 1 of the song (0.0 = the downbeat of bar 1).
      beats_per_bar: the clock's metre in quarter-note beats (4.0 for 4/4, 3.0 for 3/4, 3.0 for 6/8).
      bpm: the clock's tempo in quarter notes per minute.
    """

    beat: float
    beats_per_bar: float = 4.0
    bpm: float = 120.0

    def as_dict(self) -> dict[str, float]:
        return {"beat": self.beat, "beats_per_bar": self.beats_per_bar, "bpm": self.bpm}


@dataclasses.dataclass(frozen=True)
class GenerationControls:
    """The control values one block is generated with.

    Attributes:
      prompts: the active style prompts as ``(text, weight)``; normalised on construction
        (weights > 0 summing to 1, empty texts dropped). Empty means unconditional generation.
      guidance: classifier-free guidance weight ``w`` in ``uncond + w * (cond - uncond)``.
      temperature: sampling temperature (0 = greedy).
      top_k: sample among the k most likely tokens (>= 1).
      seed: the seed a fresh state is made from (a change takes effect at the next reset).
      bpm: the tempo for models that play on a beat grid; 0 = the tempo the prompt asks for (the
        model's reading of it). Models whose music has no grid (audio frames, time-shift events) ignore it.
      repeat: for models that play in bars (groove), the chance that a new bar repeats an earlier one
        (0 = always new, 1 = a loop); others ignore it.
      harmony: a chord the melodic parts should follow, as text (:func:`parse_harmony`: ``"C E G"``,
        ``"48 64 67"``), e.g. the notes a player holds; empty = the prompt's own harmony. Note models
        use :attr:`harmony_notes`; others ignore it.
      cfg_notes, cfg_drums, drumless, unmask_width: Magenta RT 2's own conditioning (``mrt2:`` and ``magenta:``,
        through their shared ``MRT2Conditioning``): the CFG scales of the MIDI-note piano roll and of the drum
        conditioning (-1..7, 1 = plain conditional), no drums, and the piano roll's unmask width (pitches within
        that many semitones of a held note are held off; 127 = solo). Other models ignore them.
      clock: where an external clock puts this block's first sample (:class:`MusicalPosition`), or None
        when jamgen keeps its own time. Set by the daemon's sync source, not a registry control.
    """

    prompts: tuple[tuple[str, float], ...] = ()
    guidance: float = 3.0
    temperature: float = 1.1
    top_k: int = 40
    seed: int = 0
    bpm: float = 0.0
    repeat: float = 0.5
    harmony: str = ""
    cfg_notes: float = 1.0
    cfg_drums: float = 1.0
    drumless: bool = False
    unmask_width: int = 0
    clock: MusicalPosition | None = None

    def __post_init__(self):
        object.__setattr__(self, "prompts", normalise_prompts(self.prompts))

    @property
    def harmony_notes(self) -> tuple[int, ...]:
        """The ``harmony`` notes, lowest first (empty when there is none or the text does not parse; the
        bridge refuses bad text before it gets here)."""
        try:
            return parse_harmony(self.harmony)
        except ValueError:
            return ()

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready): the block log's ``controls`` and a future wire format."""
        return {
            "prompts": [[t, round(w, 6)] for t, w in self.prompts],
            "guidance": self.guidance,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "seed": self.seed,
            "bpm": self.bpm,
            "repeat": self.repeat,
            "harmony": self.harmony,
            "cfg_notes": self.cfg_notes,
            "cfg_drums": self.cfg_drums,
            "drumless": self.drumless,
            "unmask_width": self.unmask_width,
            "clock": None if self.clock is None else self.clock.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GenerationControls":
        """The inverse of :meth:`as_dict`; missing keys take the defaults.

        Raises:
          ValueError: an unknown key or a value of the wrong shape (one line).
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown generation control(s) {sorted(unknown)}; expected {sorted(fields)}")
        kwargs = dict(data)
        try:
            if "prompts" in kwargs:
                kwargs["prompts"] = tuple((str(t), float(w)) for t, w in kwargs["prompts"])
            for name, kind in (("guidance", float), ("temperature", float), ("top_k", int), ("seed", int),
                               ("bpm", float), ("repeat", float), ("harmony", str), ("cfg_notes", float),
                               ("cfg_drums", float), ("drumless", _strict_bool), ("unmask_width", int)):
                if name in kwargs:
                    kwargs[name] = kind(kwargs[name])
            if kwargs.get("clock") is not None:
                kwargs["clock"] = MusicalPosition(**{k: float(v) for k, v in dict(kwargs["clock"]).items()})
        except (TypeError, ValueError) as err:
            raise ValueError(f"invalid generation controls: {err}") from None
        return cls(**kwargs)


def _strict_bool(value: Any) -> bool:
    """A boolean from plain data: ``bool("false")`` is True, so strings must spell it out."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off", ""):
            return False
        raise ValueError(f"expected true or false, not {value!r}")
    if isinstance(value, (bool, int, np.bool_, np.integer)):
        return bool(value)
    raise ValueError(f"expected true or false, not {value!r}")


@dataclasses.dataclass(frozen=True)
class Latency:
    """One way to run a model live: how much is generated per call and how much is kept ahead.

    What a listener waits for after moving a control is about one block (the change is read when
    the next block starts), plus the pre-buffer (audio already generated under the old values),
    plus a JACK period. Smaller is quicker to answer but leaves less room for a slow block.

    Attributes:
      block_frames: frames (40 ms each) per ``generate`` call.
      prebuffer_seconds: audio the daemon keeps generated ahead of playback; the daemon's adaptive
        pre-buffer starts here and never goes below it.
    """

    block_frames: int
    prebuffer_seconds: float

    def __post_init__(self):
        if int(self.block_frames) != self.block_frames or self.block_frames < 1:
            raise ValueError(f"block_frames must be a whole number >= 1, not {self.block_frames!r}")
        if not self.prebuffer_seconds > 0:
            raise ValueError(f"prebuffer_seconds must be positive, not {self.prebuffer_seconds!r}")
        object.__setattr__(self, "block_frames", int(self.block_frames))
        object.__setattr__(self, "prebuffer_seconds", float(self.prebuffer_seconds))


# The settings every generator offers unless it declares its own (``jamgen run --latency NAME``).
LATENCY_SETTINGS = ("low", "safe")
# low: 80 ms blocks and 150 ms ahead (the deterministic tone test generator plays these with 0
# underruns on a loaded 2-core machine; a model's own measurement should replace them);
# safe: what the daemon used before there was a choice (200 ms blocks, 300 ms ahead).
DEFAULT_LATENCY: Mapping[str, Latency] = {"low": Latency(2, 0.15), "safe": Latency(5, 0.3)}


MidiEvent = tuple[int, bytes]  # (sample offset within the last block, raw MIDI message)


class Generator(abc.ABC):
    """What the daemon drives. Implementations: :mod:`generator.audio.system`,
    :mod:`generator.symbolic.system`, :mod:`generator.backends.magenta_rt2`, and the deterministic
    test generators in ``tests/``.

    Subclasses implement the three abstract methods; the class attributes and the other methods are
    optional features with neutral defaults.
    """

    sample_rate: int = SAMPLE_RATE
    frame_samples: int = FRAME_SAMPLES
    # Start-up values for controls where the model documents its own (e.g. {"guidance": 1.25});
    # --set and mapping files still win.
    control_defaults: Mapping[str, Any] = {}
    # The settings the daemon can run this model at (``jamgen run --latency low|safe``): "low" (the
    # default: the smallest block and pre-buffer measured safe on a 2-core CPU) and "safe" (headroom
    # for a loaded machine). --block-frames and --prebuffer still override each part.
    latency: Mapping[str, Latency] = DEFAULT_LATENCY
    # True when drain_midi() returns the notes of each block (sent on <client>:midi_out).
    makes_notes: bool = False
    # True when generate() follows GenerationControls.clock (an external clock's bar phase and tempo).
    follows_clock: bool = False

    @abc.abstractmethod
    def init_state(self, seed: int = 0) -> Any:
        """A fresh generation state (empty context). Must be cheap to call again on reset."""

    @abc.abstractmethod
    def generate(self, state: Any, controls: GenerationControls, frames: int) -> tuple[np.ndarray, Any]:
        """Continue the music by ``frames`` frames.

        Returns ``(audio, new_state)`` with ``audio`` float32 ``[frames * 1920, 2]``.
        The old state may be consumed (donated); callers keep only the returned one.
        """

    @abc.abstractmethod
    def embed_style(self, text: str) -> np.ndarray:
        """The style embedding of a text prompt (used for blending and diagnostics)."""

    def warmup(self) -> None:
        """Load and compile before the first block (called once at start-up); nothing by default."""

    def drain_midi(self) -> list[MidiEvent]:
        """The MIDI messages of the block the last ``generate`` returned (generators that make notes)."""
        return []


class _Adapted(Generator):
    """A duck-typed generator (the pre-base-class contract) seen through :class:`Generator`."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.control_defaults = dict(getattr(inner, "control_defaults", {}) or {})
        self.latency = _latency_of(inner)
        self._warmup = getattr(inner, "warmup", None)
        self._drain = getattr(inner, "drain_midi", None)
        self.makes_notes = callable(self._drain)
        self.follows_clock = bool(getattr(inner, "follows_clock", False))

    def init_state(self, seed: int = 0):
        return self.inner.init_state(seed)

    def generate(self, state, controls, frames):
        return self.inner.generate(state, controls, frames)

    def embed_style(self, text):
        return self.inner.embed_style(text)

    def warmup(self) -> None:
        if callable(self._warmup):
            self._warmup()

    def drain_midi(self) -> list[MidiEvent]:
        return list(self._drain()) if self.makes_notes else []

    def __getattr__(self, name):  # everything else (compile_count, snapshots ...) from the model
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _latency_of(inner: Any) -> Mapping[str, Latency]:
    """A duck's ``latency`` (settings or ``(block_frames, prebuffer_seconds)`` pairs); an old-style
    ``prebuffer_seconds`` alone becomes that pre-buffer with the old 5-frame blocks in every setting."""
    declared = getattr(inner, "latency", None)
    if declared:
        return {name: value if isinstance(value, Latency) else Latency(*value) for name, value in declared.items()}
    old = getattr(inner, "prebuffer_seconds", None)
    if old is not None:
        return {name: Latency(5, float(old)) for name in LATENCY_SETTINGS}
    return DEFAULT_LATENCY


def adapt(obj: Any) -> Generator:
    """``obj`` as a :class:`Generator`: itself when it subclasses it, else a wrapper that reads its
    optional features once.

    Raises:
      TypeError: ``obj`` lacks ``init_state``/``generate``/``embed_style``.
    """
    if isinstance(obj, Generator):
        return obj
    missing = [m for m in ("init_state", "generate", "embed_style") if not callable(getattr(obj, m, None))]
    if missing:
        raise TypeError(f"{type(obj).__name__} is not a generator: it lacks {', '.join(missing)}")
    return _Adapted(obj)


def check_audio(audio: np.ndarray, frames: int) -> np.ndarray:
    """Validate a generator's output block; returns it as C-contiguous float32.

    Raises:
      ValueError: wrong shape, or non-finite samples (a broken generator must never reach JACK).
    """
    expected = (frames * FRAME_SAMPLES, CHANNELS)
    audio = np.asarray(audio)
    if audio.shape != expected:
        raise ValueError(f"generator returned audio of shape {audio.shape}, expected {expected}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise ValueError("generator returned non-finite samples (NaN or inf)")
    return audio
