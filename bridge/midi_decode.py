"""Turn a stream of MIDI messages into *source events*: pure logic, no ports, no threads.

A mapping file speaks of sources (``cc 21``, ``cc14 1``, ``nrpn 300``, ``note 36``), but MIDI
sends single 7-bit controller messages. 14-bit CCs and NRPNs are spread over several messages,
so a per-channel state machine reassembles them. mido has no such aggregator.

Every message is reported under *all* interpretations at once: CC 1 is both ``cc 1`` and the
MSB of ``cc14 1``; CC 6 is both ``cc 6`` and NRPN data entry. The mapping engine only reacts to
keys a file maps, and the checker refuses files that map one byte two ways.

Conventions implemented (MIDI 1.0 spec; peers.md §4.3):

* 14-bit CC: MSB on CC n (0-31), LSB on CC n+32. A new MSB resets the LSB to 0, so an MSB-only
  controller still works (at 7-bit resolution); an LSB refines the last MSB.
* NRPN: CC 99/98 select the parameter (MSB/LSB, either order), CC 6/38 carry the data. Hardware
  disagrees on data byte order: most send MSB (6) then LSB (38), some send LSB first
  (helgoboss/helgoboss-midi#5). The order is learnt from the first data byte after each
  parameter select; with LSB-first the value is emitted when the MSB completes it, so no
  half-updated value is ever applied. CC 96/97 step the value by one. CC 101/100 select an RPN,
  which we ignore, and 127/127 is the "null" parameter.
* Pitch bend is native 14-bit: mido's -8192..8191 becomes 0..16383.
* Note-on with velocity 0 is a note-off (value 0).

A ``notes`` source (a channel and a note range, played as chords into ``harmony``) is fed by the same note
events; :class:`HeldChord` keeps what its range holds and says when the chord it stands for changes.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

CC, CC14, NRPN, NOTE, PITCHBEND, PROGRAM = "cc", "cc14", "nrpn", "note", "pitchbend", "program"
KINDS = (CC, CC14, NRPN, NOTE, PITCHBEND, PROGRAM)
NOTES = "notes"  # a source kind made of NOTE events: a range of keys played as chords
MAX_VALUE = {CC: 127, CC14: 16383, NRPN: 16383, NOTE: 127, PITCHBEND: 16383, PROGRAM: 127}
NUMBER_LIMIT = {CC: 127, CC14: 31, NRPN: 16383, NOTE: 127, PITCHBEND: 0, PROGRAM: 127}

NRPN_MSB, NRPN_LSB, RPN_MSB, RPN_LSB = 99, 98, 101, 100
DATA_MSB, DATA_LSB, DATA_INC, DATA_DEC = 6, 38, 96, 97
NRPN_CCS = frozenset((NRPN_MSB, NRPN_LSB, RPN_MSB, RPN_LSB, DATA_MSB, DATA_LSB, DATA_INC, DATA_DEC))


class SourceEvent(NamedTuple):
    """One decoded control movement.

    ``channel`` is 1-16 (as musicians count), ``number`` the controller/note/parameter
    (0 for pitch bend), ``value`` the raw integer in 0..MAX_VALUE[kind].
    """

    kind: str
    channel: int
    number: int
    value: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.kind, self.channel, self.number)

    @property
    def normalised(self) -> float:
        return self.value / MAX_VALUE[self.kind]


@dataclasses.dataclass
class _ChannelState:
    msb: list[int | None] = dataclasses.field(default_factory=lambda: [None] * 32)
    param_kind: str | None = None  # "nrpn", "rpn" or None
    param_msb: int | None = None
    param_lsb: int | None = None
    data_msb: int | None = None
    pending_lsb: int | None = None
    value: int = 0  # last assembled NRPN value (for increment/decrement)
    lsb_first: bool = False
    awaiting_first_data: bool = False


class MidiDecoder:
    """Per-channel reassembly of 14-bit CC and NRPN. Not thread-safe: one feeder at a time."""

    def __init__(self) -> None:
        self._channels = [_ChannelState() for _ in range(16)]

    def reset(self) -> None:
        self._channels = [_ChannelState() for _ in range(16)]

    def feed(self, msg) -> list[SourceEvent]:
        """Decode one mido message; unknown or irrelevant messages give ``[]``. Never raises
        on well-formed mido messages (mido has already range-checked every field)."""
        kind = getattr(msg, "type", None)
        if kind == "control_change":
            return self._control(msg.channel, msg.control, msg.value)
        if kind == "note_on":
            return [SourceEvent(NOTE, msg.channel + 1, msg.note, msg.velocity)]
        if kind == "note_off":
            return [SourceEvent(NOTE, msg.channel + 1, msg.note, 0)]
        if kind == "pitchwheel":
            return [SourceEvent(PITCHBEND, msg.channel + 1, 0, msg.pitch + 8192)]
        if kind == "program_change":
            return [SourceEvent(PROGRAM, msg.channel + 1, msg.program, 127)]
        return []

    def _control(self, channel0: int, control: int, value: int) -> list[SourceEvent]:
        ch = channel0 + 1
        st = self._channels[channel0]
        events = [SourceEvent(CC, ch, control, value)]
        if control < 32:
            st.msb[control] = value
            events.append(SourceEvent(CC14, ch, control, value << 7))
        elif control < 64 and st.msb[control - 32] is not None:
            events.append(SourceEvent(CC14, ch, control - 32, (st.msb[control - 32] << 7) | value))
        if control in NRPN_CCS:
            nrpn = self._nrpn(st, control, value)
            if nrpn is not None:
                events.append(SourceEvent(NRPN, ch, nrpn[0], nrpn[1]))
        return events

    @staticmethod
    def _nrpn(st: _ChannelState, control: int, value: int) -> tuple[int, int] | None:
        if control in (NRPN_MSB, NRPN_LSB):
            if st.param_kind != "nrpn":
                st.param_msb = st.param_lsb = None
            st.param_kind = "nrpn"
            if control == NRPN_MSB:
                st.param_msb = value
            else:
                st.param_lsb = value
            st.data_msb = st.pending_lsb = None
            st.awaiting_first_data = True
            return None
        if control in (RPN_MSB, RPN_LSB):
            if st.param_kind != "rpn":
                st.param_msb = st.param_lsb = None
            st.param_kind = "rpn"
            if control == RPN_MSB:
                st.param_msb = value
            else:
                st.param_lsb = value
            if st.param_msb == 127 and st.param_lsb == 127:  # RPN null: deselect
                st.param_kind = None
            st.data_msb = st.pending_lsb = None
            return None
        if st.param_kind != "nrpn" or (st.param_msb is None and st.param_lsb is None):
            return None  # data entry for an RPN, or no parameter selected: not ours
        param = ((st.param_msb or 0) << 7) | (st.param_lsb or 0)
        if control == DATA_MSB:
            if st.awaiting_first_data:
                st.lsb_first = False
                st.awaiting_first_data = False
            st.data_msb = value
            lsb = st.pending_lsb if (st.lsb_first and st.pending_lsb is not None) else 0
            st.pending_lsb = None
            st.value = (value << 7) | lsb
            return param, st.value
        if control == DATA_LSB:
            if st.awaiting_first_data:
                st.lsb_first = True
                st.awaiting_first_data = False
            if st.lsb_first or st.data_msb is None:
                st.pending_lsb = value  # completed by the MSB that follows
                return None
            st.value = (st.data_msb << 7) | value
            return param, st.value
        # data increment / decrement
        step = 1 if control == DATA_INC else -1
        st.value = min(16383, max(0, st.value + step))
        st.data_msb = st.value >> 7
        return param, st.value


# --- chords from held notes -----------------------------------------------------------------
class HeldChord:
    """The chord a player's held keys stand for, for a ``notes`` source (pure; one feeder at a time).

    ``latch`` off: the chord is exactly the set held now; releasing every key gives the empty chord (the
    prompt's own harmony). ``latch`` on: the chord outlives the release. Each key pressed makes the chord the
    set held at that moment, so a key pressed while none is held begins a new chord, a key added to a held
    chord extends it, and legato changes (D-F-A pressed while C-E-G is let go) end as the new chord alone.
    Releases never change a latched chord.
    """

    def __init__(self, latch: bool = False):
        self.latch = latch
        self.held: set[int] = set()
        self.chord: tuple[int, ...] = ()

    def feed(self, note: int, velocity: int) -> tuple[int, ...] | None:
        """One note-on (``velocity`` > 0) or note-off; the new chord (lowest first) when it changed, else None."""
        if velocity > 0:
            self.held.add(note)
        else:
            if note not in self.held:
                return None  # a release we never saw pressed (held before a reload): nothing to do
            self.held.discard(note)
            if self.latch:
                return None
        chord = tuple(sorted(self.held))
        if chord == self.chord:
            return None
        self.chord = chord
        return chord


def chord_text(chord: tuple[int, ...]) -> str:
    """A chord as the ``harmony`` control's text: MIDI note numbers, lowest first; ``""`` for none."""
    return " ".join(str(n) for n in chord)


# --- relative encoders ----------------------------------------------------------------------
RELATIVE_MODES = ("twos_complement", "binary_offset", "sign_magnitude")


def relative_delta(mode: str, value: int) -> int:
    """Signed step count of one relative-encoder CC value (0..127).

    * ``twos_complement``: 1..63 up, 127..64 down (127 = -1); Arturia "Relative #2 (0 +/- n)",
      ReaLearn "encoder 1".
    * ``binary_offset``: 64 is rest, 65 = +1, 63 = -1; Arturia "Relative #1 (64 +/- n)",
      ReaLearn "encoder 2".
    * ``sign_magnitude``: bit 6 is the sign, 1 = +1, 65 = -1; ReaLearn "encoder 3".
    """
    value &= 0x7F
    if mode == "twos_complement":
        return value - 128 if value >= 64 else value
    if mode == "binary_offset":
        return value - 64
    if mode == "sign_magnitude":
        return -(value & 0x3F) if value & 0x40 else value
    raise ValueError(f"relative mode must be one of {', '.join(RELATIVE_MODES)}, got {mode!r}")
