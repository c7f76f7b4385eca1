"""``--record FILE.wav``: write exactly what the JACK callback played, from a background thread.

The callback mirrors its output into a ring buffer (:mod:`bridge.jack_io`); this thread drains it
into a WAV file with soundfile. Closing drains what is left and finalises the header, so a
SIGTERM still leaves a complete, valid file.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import soundfile

import jack

from generator.core.contract import CHANNELS, SAMPLE_RATE

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, path: str, rb: jack.RingBuffer):
        self.path = path
        self.rb = rb
        # Opened here so that an unwritable path fails at start-up, not minutes later.
        self._file = soundfile.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=CHANNELS,
                                         subtype="FLOAT")
        self.frames_written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jamgen-record", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _drain(self) -> None:
        nbytes = self.rb.read_space // (4 * CHANNELS) * (4 * CHANNELS)
        if nbytes:
            data = np.frombuffer(self.rb.read(nbytes), dtype=np.float32).reshape(-1, CHANNELS)
            self._file.write(data)
            self.frames_written += len(data)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._drain()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._drain()
        self._file.close()
        log.info("recorded %.1f s to %s", self.frames_written / SAMPLE_RATE, self.path)
