"""The ALSA MIDI input backend: an ALSA sequencer virtual port through mido's rtmidi backend.

Used where no JACK server runs but an ALSA sequencer exists (``/dev/snd/seq``): the virtual
port is named like the JACK one (``<client>:midi_in``), and hardware inputs whose names match
the patterns are opened as well and feed the same queue. rtmidi does not fall back from ALSA,
and headless machines often have no sequencer, so a failed open is a warning, and the input
tries again later (JACK first).

Threading: rtmidi calls :meth:`AlsaMidiBackend._callback` on its own input thread; it only puts
raw bytes on the owner's queue. Opening, connecting and closing run on the maintenance thread.
"""

from __future__ import annotations

import logging

import mido

from bridge.midi_backend import PORT_NAME, MidiBackend, matches

log = logging.getLogger(__name__)

RTMIDI_ALSA = "mido.backends.rtmidi/LINUX_ALSA"


class AlsaMidiBackend(MidiBackend):
    """A virtual ALSA input (``<client_name>:midi_in``) plus the matching hardware inputs."""

    def __init__(self, owner):
        super().__init__(owner)
        self.virtual = None  # the virtual input port while open
        self.ports: dict[str, object] = {}  # hardware input name -> open mido port

    def open(self) -> bool:
        owner = self.owner
        try:
            backend = mido.Backend(RTMIDI_ALSA)
            self.virtual = backend.open_input(PORT_NAME, virtual=True, client_name=owner.client_name,
                                              callback=self._callback)
        except Exception as err:  # rtmidi raises SystemError without a sequencer
            log.warning("MIDI: no JACK server and no ALSA sequencer (%s); MIDI input waits for JACK",
                        " ".join(str(err).split()))
            return False
        log.info("MIDI: ALSA virtual input %s:%s ready", owner.client_name, PORT_NAME)
        self.connect()
        return True

    def _callback(self, msg: mido.Message) -> None:
        """rtmidi's thread: queue the raw bytes (SysEx is never a control)."""
        if msg.type != "sysex":
            self.owner.queue.put_nowait(bytes(msg.bytes()))

    def connect(self) -> None:
        owner = self.owner
        if not owner.patterns:
            return
        try:
            backend = mido.Backend(RTMIDI_ALSA)
            names = backend.get_input_names()
        except Exception:
            return
        for name in names:
            if name in self.ports or owner.client_name in name or not matches(owner.patterns, [name]):
                continue
            try:
                self.ports[name] = backend.open_input(name, callback=self._callback)
                log.info("MIDI: opened ALSA input %s", name)
            except Exception as err:
                owner.warn.warning(f"alsa:{name}", "MIDI: cannot open %s: %s", name, err)
        for name in [n for n in self.ports if n not in names]:  # unplugged
            try:
                self.ports.pop(name).close()
            except Exception:
                pass

    def close(self) -> None:
        for port in list(self.ports.values()) + ([self.virtual] if self.virtual else []):
            try:
                port.close()
            except Exception:
                pass
        self.ports.clear()
        self.virtual = None
