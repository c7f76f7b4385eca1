"""Value transforms of a mapping: normalised input -> curve -> target range, and back.

Every source is first normalised to 0..1 (MIDI by its resolution, OSC by ``in: [lo, hi]``),
then ``invert`` flips it, ``curve`` shapes it and ``range`` scales it. The inverse exists for
every curve because soft takeover and relative encoders must know where the *current* value of
a control sits on the knob's travel.

Curves:

* ``linear``: y = x.
* ``exp``: slow at the bottom, fast at the top. When both range ends are positive it is the
  geometric (equal ratio per step) curve ``lo * (hi/lo) ** x``, which is what musicians expect
  for top-k or frequencies (``[1, 1024]`` gives 1, 2, 4, ... per tenth of the travel). For
  ranges touching 0 or negative numbers a fixed base of 100 (40 dB of "bend") is used.
* ``log``: the mirror image of ``exp`` (fast at the bottom).

Soft takeover ("pick-up") lives here as well, as it is pure arithmetic on normalised values.

Threading: :class:`Scale` is immutable and safe anywhere; a :class:`Pickup` belongs to one
mapping and is only touched under the mapping engine's lock.
"""

from __future__ import annotations

import math

CURVES = ("linear", "exp", "log")
DEFAULT_EXP_BASE = 100.0
PICKUP_TOLERANCE = 0.02  # about 2.5 steps of a 7-bit knob


def clamp01(x: float) -> float:
    if x != x:  # NaN
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def curve_base(curve: str, lo: float, hi: float) -> float:
    """The exponential base used by ``exp``/``log`` for the range ``[lo, hi]`` (lo < hi)."""
    if lo > 0 and hi > 0 and hi / lo > 1.0 + 1e-9:
        return hi / lo
    return DEFAULT_EXP_BASE


def shape(curve: str, x: float, base: float) -> float:
    """Apply ``curve`` to x in 0..1; result in 0..1."""
    if curve == "exp":
        return (base ** x - 1.0) / (base - 1.0)
    if curve == "log":
        return math.log1p((base - 1.0) * x) / math.log(base)
    return x


def unshape(curve: str, y: float, base: float) -> float:
    """Inverse of :func:`shape`."""
    y = clamp01(y)
    if curve == "exp":
        return math.log1p((base - 1.0) * y) / math.log(base)
    if curve == "log":
        return (base ** y - 1.0) / (base - 1.0)
    return y


class Scale:
    """Normalised knob position <-> target value for one mapping.

    Args:
      lo, hi: the target range (``lo < hi``; reversed ranges arrive as ``invert=True``).
      curve: one of :data:`CURVES`.
      invert: flip the knob's direction.
    """

    __slots__ = ("lo", "hi", "curve", "invert", "base")

    def __init__(self, lo: float, hi: float, curve: str = "linear", invert: bool = False):
        if not lo < hi:
            raise ValueError(f"range must have lo < hi, got [{lo}, {hi}]")
        if curve not in CURVES:
            raise ValueError(f"curve must be one of {', '.join(CURVES)}, got {curve!r}")
        self.lo, self.hi, self.curve, self.invert = float(lo), float(hi), curve, bool(invert)
        self.base = curve_base(curve, lo, hi)

    def forward(self, x: float) -> float:
        x = clamp01(x)
        if self.invert:
            x = 1.0 - x
        y = shape(self.curve, x, self.base)
        return self.lo + (self.hi - self.lo) * y

    def inverse(self, value: float) -> float:
        """Where on the knob (0..1) ``value`` sits; values outside the range clamp to an end."""
        try:
            y = (float(value) - self.lo) / (self.hi - self.lo)
        except (TypeError, ValueError):
            return 0.0
        x = unshape(self.curve, y, self.base)
        return 1.0 - x if self.invert else x


class Pickup:
    """Soft takeover for one absolute knob.

    After a load, or after something else (OSC, another knob) moved the control, the knob's
    physical position no longer matches the value. Moving it would make the value jump; instead
    the knob is ignored until it comes within :data:`PICKUP_TOLERANCE` of the current value or
    crosses it between two readings (a fast move can skip over it).
    """

    __slots__ = ("engaged", "last_x")

    def __init__(self) -> None:
        self.engaged = False
        self.last_x: float | None = None

    def release(self) -> None:
        """The control moved under us: wait for the knob to catch up again."""
        self.engaged = False

    def allow(self, x: float, current: float) -> bool:
        """Should knob position ``x`` be applied, given the control sits at ``current``?"""
        if not self.engaged:
            if abs(x - current) <= PICKUP_TOLERANCE:
                self.engaged = True
            elif self.last_x is not None and (self.last_x - current) * (x - current) <= 0:
                self.engaged = True
        self.last_x = x
        return self.engaged
