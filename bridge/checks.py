"""The validations behind text controls' ``Control.check`` names, installed into the plain-data registry.

Why a separate module: :mod:`bridge.controls` must import nothing from ``generator`` (it is plain data, read by
surfaces and the CLI's help without model code), yet whether ``"C E G#"`` is a chord is defined once, by the
generator contract (:func:`generator.core.contract.parse_harmony`). Importing this module installs each check
(idempotent); :mod:`bridge.session` (``run``, ``render``, OSC and MIDI through the store) and
:mod:`bridge.mapping_schema` (mapping files, ``jamgen mappings check``) import it, so every way a value comes in
is checked. ``tests/test_harmony_input.py`` proves every ``check`` named in the registry is installed.
"""

from __future__ import annotations

from bridge import controls
from generator.core.contract import parse_harmony



def harmony(text: str) -> tuple[int, ...]:
    """:func:`parse_harmony`, with every refusal a one-line message that starts ``harmony:``."""
    try:
        return parse_harmony(text)
    except ValueError as err:
        message = str(err).splitlines()[0] if str(err) else ""
        if message.startswith("harmony:"):
            raise
        raise ValueError(f"harmony: {text[:40]!r} is not a chord such as 'C E G' or '48 64 67' ({message})") from None


CHECKS = {"harmony": harmony}


def install() -> None:
    """Install every check of :data:`CHECKS` into :mod:`bridge.controls`."""
    for name, fn in CHECKS.items():
        controls.install_check(name, fn)


install()
