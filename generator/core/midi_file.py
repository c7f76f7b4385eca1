"""Standard MIDI files from what generators play: shared by ``jamgen render --midi`` and the families.

Why in the core: any generator that makes notes (``Generator.makes_notes``) hands the daemon raw MIDI
messages stamped with sample offsets; turning a stream of those into a file that lines up with the
rendered audio is the same job for every family, and the symbolic family's token decoder writes its
notes through the same :func:`messages_to_midi`.
"""

from __future__ import annotations

from typing import Iterable

import mido

TICKS_PER_BEAT = 480
FILE_TEMPO_US = 500_000  # 120 bpm: a tick is then 1/960 s, about 1 ms


def messages_to_midi(msgs: list, ticks_per_beat: int = TICKS_PER_BEAT) -> mido.MidiFile:
    """A type-0 file at 120 bpm from ``(seconds, order, mido.Message)`` triples (sorted here)."""
    msgs.sort(key=lambda m: (m[0], m[1]))
    mf = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    mf.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=FILE_TEMPO_US, time=0))
    ticks_per_second = ticks_per_beat * 1_000_000 / FILE_TEMPO_US
    last = 0
    for t, _, msg in msgs:
        tick = int(round(t * ticks_per_second))
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return mf


def write_midi(events: Iterable[tuple[int, bytes]], path, sample_rate: int = 48_000) -> mido.MidiFile:
    """Write raw MIDI messages stamped with absolute stream sample positions to a MIDI file.

    ``events``: ``(sample, message_bytes)`` pairs, e.g. what ``Generator.drain_midi`` returned for
    each block with the block's first stream sample added. Times become ticks at 120 bpm, 480 ticks
    per beat (about 1 ms resolution), so the file lines up with the rendered audio.
    """
    msgs = []
    for i, (sample, data) in enumerate(events):
        msgs.append((sample / sample_rate, i, mido.Message.from_bytes(bytes(data))))
    mf = messages_to_midi(msgs, TICKS_PER_BEAT)
    mf.save(str(path))
    return mf
