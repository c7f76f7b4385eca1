"""What ``jamgen run`` and ``jamgen render`` both start from: the controls' start-up values and a loaded model.

Why one place: the start-up values have an order of precedence that must not depend on where the music goes
(JACK or a WAV file). Lowest first: the registry's defaults, the model's documented defaults
(``Generator.control_defaults``), the mapping file's prompts, and the command line's ``--prompt``/``--set``,
which win over everything. A model default applies only to a control the user set nowhere.

It also holds :func:`generation_controls`, the one adapter from a control snapshot to the generator's
:class:`~generator.core.contract.GenerationControls`, used per block by :mod:`bridge.engine` and by ``render``.
It lives here rather than in :mod:`bridge.engine` so that ``render`` needs neither JACK nor libjack, and not in
:mod:`bridge.controls` so that the registry stays plain data that knows nothing of generators.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import bridge.checks  # noqa: F401  (installs the text controls' checks: a bad harmony is refused on every way in)
import generator as generators
from bridge.controls import GENERATION_CONTROLS, NUM_PROMPTS, ControlSnapshot, ControlStore
from generator.core.contract import GenerationControls, Generator


def generation_controls(snapshot: ControlSnapshot) -> GenerationControls:
    """The generator's view of a control snapshot.

    Every prompt slot is passed as ``(text, slewed weight)``; :class:`GenerationControls` itself drops the
    inactive slots (empty text or weight 0) and normalises the weights, so this adapter never does.
    """
    values = snapshot.values
    return GenerationControls(
        prompts=tuple((values[f"prompts[{i}].text"], values[f"prompts[{i}].weight"]) for i in range(NUM_PROMPTS)),
        **{name: values[name] for name in GENERATION_CONTROLS},  # the registry's generation group
    )


def command_line_values(prompts: Iterable[tuple[str, float]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``--prompt`` (one slot each, in order) and ``--set NAME=VALUE`` as control values; ``--set`` wins."""
    values: dict[str, Any] = {}
    for slot, (text, weight) in enumerate(prompts):
        values[f"prompts[{slot}].text"] = text
        values[f"prompts[{slot}].weight"] = weight
    values.update(settings)
    return values


class Session:
    """The live controls and the model one ``run`` or ``render`` plays, set up in two steps.

    :meth:`set_start_values` comes first and is cheap, so a broken value (or, in the daemon, a broken
    mapping file read in between) is refused before the slow :meth:`load_model`.

    Args:
      model: a model spec for :func:`generator.load`.
      prompts: the ``--prompt`` values as ``(text, weight)``, slot by slot.
      settings: the ``--set`` values by control name.

    Attributes:
      store: the :class:`ControlStore` every surface and the engine share.
      generator: the loaded model (None until :meth:`load_model`).
    """

    def __init__(self, model: str, prompts: Iterable[tuple[str, float]] = (),
                 settings: Mapping[str, Any] | None = None):
        self.model = model
        self.command_line = command_line_values(prompts, settings or {})
        self.store = ControlStore()
        self.generator: Generator | None = None
        self._user_set: set[str] = set(self.command_line)

    def set_start_values(self, file_values: Mapping[str, Any] | None = None,
                         saved: Mapping[str, Any] | None = None) -> None:
        """Apply the mapping file's values, then the command line's, then a session manager's saved ones (which
        win: ``bridge.nsm``); they sound at once, without a fade-in.

        Raises:
          bridge.controls.ControlError: a value that cannot be applied (one line).
        """
        file_values, saved = dict(file_values or {}), dict(saved or {})
        for name, value in {**file_values, **self.command_line, **saved}.items():
            self.store.set(name, value, source="start-up")
        self.store.settle()
        self._user_set = set(self.command_line) | set(file_values) | set(saved)

    def load_model(self, warm_up: bool = True) -> Generator:
        """Load the model, give it its documented control defaults where the user set none, and warm it up.

        Args:
          warm_up: compile and load everything before the first block. The daemon must (a first-call compile
            would be an underrun); ``render`` skips it, as offline a slow first block costs nothing.

        Raises:
          generator.ModelLoadError: the spec cannot be loaded (one line).
        """
        gen = generators.load(self.model)
        for name, value in gen.control_defaults.items():
            if name not in self._user_set:  # the model's documented default; the user's choice wins
                self.store.set(name, value, source=f"model {self.model}")
        if warm_up:
            gen.warmup()
        self.generator = gen
        return gen
