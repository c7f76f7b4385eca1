"""The prompt heads' shared file handling (generator/core/heads.py), for each of the three heads:
saved into a checkpoint with their fit numbers, loaded back, absent, corrupt, or misshapen."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from generator.symbolic.arrangement import Arrangement
from generator.symbolic.pitch import PitchHead
from generator.symbolic.tempo import TempoHead

from tests.test_symbolic_arrangement import DRUMS, only as only_parts
from tests.test_symbolic_pitch import only as only_classes
from tests.test_symbolic_tempo import fixed


def _arrangement_back(back, head):
    assert np.array_equal(back.bias, head.bias) and back.floor == head.floor


def _tempo_back(back, head):
    assert back.native_bpm == 100.0 and back.scale(np.ones(384)) == pytest.approx(1.3)


def _pitch_back(back, head):
    assert np.array_equal(back.bias, head.bias)


HEADS = [
    pytest.param(Arrangement, lambda: only_parts([DRUMS]), "arrangement", "arrangement.safetensors", _arrangement_back,
                 id="arrangement"),
    pytest.param(TempoHead, lambda: fixed(1.3), "tempo", "tempo.safetensors", _tempo_back, id="tempo"),
    pytest.param(PitchHead, lambda: only_classes([2, 5, 9]), "pitch", "pitch.safetensors", _pitch_back, id="pitch"),
]


@pytest.fixture
def checkpoint_dir(tmp_path):
    """A symbolic checkpoint directory with nothing in it yet but its config.json."""
    (tmp_path / "config.json").write_text(json.dumps({"format": "jamgen-symbolic", "version": 1, "files": {}}))
    return tmp_path


@pytest.mark.parametrize("cls, make, section, file, same", HEADS)
def test_head_file_round_trip_and_corruption(checkpoint_dir, cls, make, section, file, same):
    head = make()
    head.save(checkpoint_dir, {"heldout": {"rows": 1}})
    meta = json.loads((checkpoint_dir / "config.json").read_text())
    digest = meta["files"][file]
    assert meta[section]["heldout"] == {"rows": 1}  # the fit's numbers travel with the checkpoint
    same(cls.load(checkpoint_dir, digest), head)
    assert cls.load(checkpoint_dir / "nowhere") is None
    blob = bytearray((checkpoint_dir / file).read_bytes())
    blob[-3] ^= 0xFF
    (checkpoint_dir / file).write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupt"):
        cls.load(checkpoint_dir, digest)


@pytest.mark.parametrize("cls, make, section, file, same", HEADS)
def test_misshapen_head_is_refused_in_one_line(checkpoint_dir, cls, make, section, file, same):
    save_file({"weight": np.zeros((384, 7), np.float32), "bias": np.zeros(7, np.float32)},
              str(checkpoint_dir / file))
    with pytest.raises(ValueError, match="expected weight") as err:
        cls.load(checkpoint_dir)
    assert file in str(err.value) and "\n" not in str(err.value)
