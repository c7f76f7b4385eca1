"""OSC routing without a socket: the address space, argument checks, replies and subscriptions.

Like python-osc's dispatcher tests, these drive :class:`bridge.osc_routes.OscRouter` directly;
the UDP transport around it is tested in test_osc.py and test_osc_fuzz.py.
"""

from __future__ import annotations

import logging

import pytest

from bridge.controls import BOOL, FLOAT, INT, LIVE, NUM_PROMPTS, REGISTRY, STRING, TRIGGER, ControlError, ControlStore
from bridge.osc_routes import (
    ALIASES,
    COMMANDS,
    PREFIX,
    TRANSPORT_ADDRESS,
    OscRouter,
    builtin_addresses,
    control_address,
    feedback_address,
    prompt_address,
    sounding_controls,
    sounding_messages,
    state_messages,
)

SENDER = ("10.0.0.7", 5555)


class Harness:
    """A router on a fresh store, with its reply and subscribe hooks recorded."""

    def __init__(self, **kwargs):
        self.store = ControlStore()
        self.replies: list[tuple[tuple, list]] = []
        self.subscriptions: list[tuple[tuple, bool]] = []
        self.refuse_subscribers = False
        self.router = OscRouter(self.store, self._reply, self._subscribe, **kwargs)

    def _reply(self, target, messages):
        self.replies.append((target, messages))

    def _subscribe(self, target, on):
        if on and self.refuse_subscribers:
            raise ControlError("too many subscribers (max 0)")
        self.subscriptions.append((target, on))

    def send(self, address, *args) -> bool:
        return self.router.dispatch(address, tuple(args), SENDER)


def _sample(name: str):
    """A valid value of control ``name`` that differs from its default."""
    c = REGISTRY[name]
    if c.type == STRING:
        return "C E G" if c.check else "dub techno chords"  # a checked text (harmony) must parse
    if c.type == BOOL:
        return not c.default
    return c.maximum if c.default != c.maximum else c.minimum


def test_the_router_serves_exactly_the_address_space():
    assert Harness().router.addresses() == builtin_addresses()
    for command in COMMANDS:
        assert f"{PREFIX}/{command}" in builtin_addresses()


def test_aliases_name_registry_controls():
    assert set(ALIASES) <= set(REGISTRY), set(ALIASES) - set(REGISTRY)


@pytest.mark.parametrize("name", [n for n, c in REGISTRY.items() if c.type != TRIGGER])
def test_every_control_is_set_through_its_address(name):
    h = Harness()
    value = _sample(name)
    assert h.send(control_address(name), value)
    expected, _ = REGISTRY[name].coerce(value)
    assert h.store.get(name) == expected


def test_ints_and_floats_are_interchangeable_and_aliases_take_both_names():
    h = Harness()
    assert h.send("/jamgen/top_k", 12.0) and h.store.get("top_k") == 12
    assert h.send("/jamgen/volume", -6) and h.store.get("volume_db") == -6.0
    assert h.send("/jamgen/volume_db", -3.0) and h.store.get("volume_db") == -3.0


def test_triggers_drive_the_transport():
    h = Harness()
    assert h.send(control_address("pause")) and h.store.transport == "paused"
    assert h.send(control_address("play"), 1.0) and h.store.transport == "playing"  # arguments ignored
    assert h.send(control_address("stop")) and h.store.transport == "stopped"


def test_prompt_slot_shortcuts():
    h = Harness()
    assert h.send(prompt_address(2), "warm analog pads", 0.8)
    assert (h.store.get("prompts[2].text"), h.store.get("prompts[2].weight")) == ("warm analog pads", 0.8)
    assert h.send(prompt_address(3), "bossa nova")  # weight defaults to 1
    assert h.store.get("prompts[3].weight") == 1.0
    assert h.send(prompt_address(2, "clear"))
    assert (h.store.get("prompts[2].text"), h.store.get("prompts[2].weight")) == ("", 0.0)
    assert not h.send(prompt_address(0), 3.0)  # text first
    assert not h.send(prompt_address(NUM_PROMPTS, "weight"), 1.0)  # no such slot


def test_bad_arguments_are_refused_and_logged(caplog):
    h = Harness()
    with caplog.at_level(logging.WARNING):
        assert not h.send("/jamgen/temperature", float("nan"))
        assert not h.send("/jamgen/temperature", "hot")
        assert not h.send("/jamgen/top_k", 1, 2, 3)
        assert not h.send("/jamgen/temprature", 0.5)
    assert h.store.get("temperature") == REGISTRY["temperature"].default
    assert "non-finite argument" in caplog.text
    assert "takes 1 argument, got 3" in caplog.text
    assert "did you mean /jamgen/temperature?" in caplog.text


def test_other_addresses_go_to_the_extra_handler():
    seen = []

    def extra(address, args):
        seen.append((address, args))
        return address == "/1/fader1"

    h = Harness(extra_handler=extra)
    assert h.send("/1/fader1", 0.5)
    assert not h.send("/2/fader9", 0.5)
    assert seen == [("/1/fader1", (0.5,)), ("/2/fader9", (0.5,))]
    assert h.send("/jamgen/guidance", 2.0) and len(seen) == 2  # built-ins never reach it


def test_learn_needs_a_handler_and_a_target():
    assert not Harness().send("/jamgen/learn", "guidance")  # no mapping file in use
    targets = []
    h = Harness(learn_handler=targets.append)
    assert h.send("/jamgen/learn", "prompts[5].weight")
    assert not h.send("/jamgen/learn")
    assert not h.send("/jamgen/learn", 3)
    assert targets == ["prompts[5].weight"]


def test_state_replies_to_the_sender_with_every_value_and_what_is_sounding():
    info = {"frame": 42, "controls": {**{n: c.default for n, c in REGISTRY.items()}, "prompts": [("jazz", 1.0)]}}
    h = Harness(sounding=lambda: info)
    h.store.set("temperature", 0.5)
    assert h.send("/jamgen/state")
    [(target, messages)] = h.replies
    assert target == SENDER[:2]
    got = dict(messages)
    assert got[TRANSPORT_ADDRESS] == "playing" and got["/jamgen/temperature"] == 0.5
    assert {control_address(n) for n, c in REGISTRY.items() if c.type != TRIGGER} <= set(got)
    assert got["/jamgen/sounding/frame"] == 42 and got["/jamgen/sounding/prompts"] == "jazz:1.00"
    assert messages == state_messages(h.store.values()) + sounding_messages(info)


def test_subscribe_and_unsubscribe_go_through_the_hook():
    h = Harness()
    assert h.send("/jamgen/subscribe", 9001)
    assert h.subscriptions == [((SENDER[0], 9001), True)]
    assert [t for t, _ in h.replies] == [(SENDER[0], 9001)]  # the full state at once
    assert h.send("/jamgen/subscribe")  # default: the sender's own port
    assert h.subscriptions[-1] == (SENDER[:2], True)
    assert h.send("/jamgen/unsubscribe", 9001)
    assert h.subscriptions[-1] == ((SENDER[0], 9001), False) and len(h.replies) == 2
    assert not h.send("/jamgen/subscribe", 99999)
    h.refuse_subscribers = True
    assert not h.send("/jamgen/subscribe", 9002) and len(h.replies) == 2


def test_sounding_reports_the_live_scalar_controls():
    names = sounding_controls()
    assert names and set(names) <= set(REGISTRY)
    for name in names:
        c = REGISTRY[name]
        assert c.applies == LIVE and c.type in (FLOAT, INT, BOOL) and not name.startswith("prompts[")
    assert "seed" not in names  # applies at the next reset: not what is heard now
    info = {"frame": 0, "controls": {**{n: REGISTRY[n].default for n in names}, "prompts": []}}
    addresses = [a for a, _ in sounding_messages(info)]
    assert "/jamgen/sounding/volume" in addresses and "/jamgen/sounding/top_k" in addresses


def test_feedback_addresses():
    assert feedback_address("transport") == TRANSPORT_ADDRESS
    assert feedback_address("volume_db") == "/jamgen/volume"
    assert feedback_address("prompts[1].text") == "/jamgen/prompt/1/text"
    assert feedback_address("play") is None and feedback_address("nope") is None
