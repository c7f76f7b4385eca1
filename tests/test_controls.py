"""The control registry and store: ranges, types, slew, normalisation, transport, threads."""

import math
import threading

import pytest

from bridge.controls import (
    NUM_PROMPTS,
    REGISTRY,
    WEIGHT_SLEW_SECONDS,
    ControlError,
    ControlStore,
)
from bridge.session import generation_controls


def test_registry_declares_the_required_controls_with_magenta_defaults():
    for i in range(NUM_PROMPTS):
        assert f"prompts[{i}].text" in REGISTRY and f"prompts[{i}].weight" in REGISTRY
    for name in ("guidance", "temperature", "top_k", "seed", "volume_db", "mute", "play", "pause", "stop", "reset"):
        assert name in REGISTRY
    assert REGISTRY["temperature"].default == 1.1
    assert REGISTRY["top_k"].default == 40
    assert REGISTRY["seed"].applies == "reset"
    for c in REGISTRY.values():
        assert c.doc, c.name


def test_out_of_range_values_are_clamped_and_reported(caplog):
    store = ControlStore()
    assert store.set("temperature", 99) == 3.0
    assert store.set("top_k", -5) == 1
    assert store.set("volume_db", -1000.0) == -60.0
    assert "clamped" in caplog.text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "abc", [1, 2], None, {"a": 1}])
def test_bad_values_raise_control_error_and_change_nothing(value):
    store = ControlStore()
    with pytest.raises(ControlError):
        store.set("guidance", value)
    assert store.get("guidance") == REGISTRY["guidance"].default


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ControlError, match="did you mean 'temperature'"):
        ControlStore().set("temprature", 1.0)


def test_ints_and_floats_and_numeric_strings_are_interchangeable():
    store = ControlStore()
    assert store.set("top_k", 12.6) == 13
    assert store.set("temperature", 1) == 1.0
    assert store.set("guidance", "4.5") == 4.5
    assert store.set("mute", 1) is True


def test_prompt_text_is_bounded_and_one_line():
    store = ControlStore()
    assert store.set("prompts[0].text", "a\nb\tc") == "a b c"
    assert len(store.set("prompts[0].text", "x" * 10_000)) == 512
    with pytest.raises(ControlError):
        store.set("prompts[0].text", 3)


def test_weights_normalise_over_active_slots_only():
    store = ControlStore({"prompts[0].text": "jazz", "prompts[0].weight": 0.6,
                          "prompts[1].text": "rock", "prompts[1].weight": 0.2,
                          "prompts[2].text": "", "prompts[2].weight": 1.0,  # no text: inactive
                          "prompts[3].text": "folk", "prompts[3].weight": 0.0})  # weight 0: inactive
    controls = generation_controls(store.snapshot())
    assert [t for t, _ in controls.prompts] == ["jazz", "rock"]
    assert math.isclose(sum(w for _, w in controls.prompts), 1.0)
    assert math.isclose(controls.prompts[0][1], 0.75)


def test_weight_jumps_are_slewed():
    store = ControlStore({"prompts[0].text": "jazz", "prompts[0].weight": 0.0})
    store.set("prompts[0].weight", 1.0)
    step = WEIGHT_SLEW_SECONDS / 4
    seen = [store.snapshot(step).values["prompts[0].weight"] for _ in range(5)]
    assert seen[0] == pytest.approx(0.25)
    assert seen[1] == pytest.approx(0.5)
    assert seen[3] == pytest.approx(1.0) and seen[4] == 1.0


def test_transport_triggers():
    store = ControlStore()
    assert store.transport == "playing"
    store.trigger("pause")
    assert store.transport == "paused"
    r = store.snapshot().reset_count
    store.trigger("reset")
    assert store.snapshot().reset_count == r + 1 and store.transport == "paused"
    store.trigger("stop")
    assert store.transport == "stopped" and store.snapshot().reset_count == r + 2
    store.set("play", None)
    assert store.transport == "playing"
    with pytest.raises(ControlError):
        store.trigger("temperature")


def test_listeners_see_changes_and_a_broken_listener_does_not_break_others():
    store = ControlStore()
    seen = []
    store.subscribe(lambda n, v: 1 / 0)
    unsubscribe = store.subscribe(lambda n, v: seen.append((n, v)))
    store.set("top_k", 10)
    store.set("top_k", 10)  # unchanged: no notification
    store.trigger("pause")
    unsubscribe()
    store.set("top_k", 11)
    assert seen == [("top_k", 10), ("transport", "paused")]


def test_snapshots_are_consistent_under_concurrent_writers():
    """Two writers always set guidance and temperature to the same value together... but as two
    separate calls; the snapshot must still only ever contain values that were written."""
    store = ControlStore()
    stop = threading.Event()
    written = {round(0.1 * i, 1) for i in range(30)}

    def writer():
        i = 0
        while not stop.is_set():
            v = round(0.1 * (i % 30), 1)
            store.set("temperature", v)
            store.set("prompts[1].weight", min(v, 1.0))
            i += 1

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(2000):
            snap = store.snapshot(0.001)
            assert snap.values["temperature"] in written | {1.1}
            assert 0.0 <= snap.values["prompts[1].weight"] <= 1.0
    finally:
        stop.set()
        for t in threads:
            t.join()
