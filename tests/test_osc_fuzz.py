"""Property-based fuzzing of the OSC surface: whatever arrives, nothing raises and every
control stays a valid value of its declared type and range."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings, strategies as st
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.controls import REGISTRY, ControlStore
from bridge.osc import OscServer, builtin_addresses

STORE = ControlStore()
SERVER = OscServer(STORE, "127.0.0.1", 0)  # socket bound, threads not started: packets go in directly
SENDER = ("127.0.0.1", 9)

args = st.lists(st.one_of(
    st.integers(-2**31, 2**31 - 1), st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.text(max_size=700), st.booleans(), st.binary(max_size=300),
), max_size=4)
addresses = st.one_of(st.sampled_from(builtin_addresses()), st.text(min_size=1, max_size=60).map(lambda s: "/" + s))


def _message(address: str, values: list) -> bytes:
    builder = OscMessageBuilder(address)
    for v in values:
        builder.add_arg(v)
    return builder.build().dgram


def _check_store() -> None:
    values = STORE.values()
    for name, control in REGISTRY.items():
        if control.type in ("float", "int"):
            v = values[name]
            assert math.isfinite(v) and control.minimum <= v <= control.maximum, (name, v)
        elif control.type == "string":
            assert isinstance(values[name], str) and len(values[name]) <= control.maximum


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(addresses, args)
def test_any_well_formed_message_is_applied_or_refused_cleanly(address, values):
    try:
        packet = _message(address, values)
    except Exception:  # the builder itself refuses (e.g. NUL in address)
        return
    SERVER.handle_packet(packet, SENDER)
    _check_store()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data):
    SERVER.handle_packet(data, SENDER)
    SERVER.handle_packet(b"#bundle\x00" + data, SENDER)
    SERVER.handle_packet(b"/jamgen/temperature\x00,f\x00\x00" + data, SENDER)
    _check_store()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(addresses, args), min_size=1, max_size=5), st.integers(0, 30))
def test_nested_bundles_never_raise(contents, depth):
    inner = OscBundleBuilder(1)  # timetag 1 = long past: apply now
    for address, values in contents:
        try:
            inner.add_content(OscMessage(_message(address, values)))
        except Exception:
            continue
    bundle = inner.build()
    for _ in range(depth):
        outer = OscBundleBuilder(1)
        outer.add_content(bundle)
        bundle = outer.build()
    SERVER.handle_packet(bundle.dgram, SENDER)
    _check_store()
