"""The registry is the only list of controls: every surface that lists controls is generated from
it, and every hand-kept table keyed by control name names registry controls only."""

from __future__ import annotations

import json
import zlib

import pytest

from bridge import osc_routes, surfaces_gen, surfaces_osc, surfaces_pd
from bridge.controls import NUM_PROMPTS, REGISTRY, TRIGGER
from bridge.mapping_schema import parse
from bridge.osc_routes import builtin_addresses, control_address
from bridge.surfaces_gen import README_BEGIN, README_END, controls_markdown
from bridge.yaml_lines import load_located
from tests.conftest import ROOT


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    begin = next(i for i, line in enumerate(lines) if line.strip() == README_BEGIN)
    end = next(i for i, line in enumerate(lines) if line.strip() == README_END)
    return "".join(lines[begin + 1:end])


def test_readme_controls_table_is_generated_from_the_registry():
    assert readme_block() == controls_markdown(), (
        "README.md's controls table is stale: replace the block between "
        f"{README_BEGIN} and {README_END} with `python -m bridge.surfaces_gen --markdown`")


def test_readme_table_lists_every_control():
    table = controls_markdown()
    for name in REGISTRY:
        shown = name if not name.startswith("prompts[") else f"prompts[0..{NUM_PROMPTS - 1}]." + name.split(".")[1]
        assert f"`{shown}`" in table, name


@pytest.mark.parametrize("table", [surfaces_gen.README_NOTES, osc_routes.ALIASES], ids=["README_NOTES", "ALIASES"])
def test_hand_kept_tables_name_registry_controls_only(table):
    assert set(table) <= set(REGISTRY), set(table) - set(REGISTRY)


def test_generated_surfaces_are_up_to_date():
    assert surfaces_gen.MAXPAT.read_text(encoding="utf-8") == surfaces_gen.maxpat_text(), \
        "max_patches/jamgen.maxpat is stale: run python -m bridge.surfaces_gen"
    assert surfaces_gen.TOSC.read_bytes() == surfaces_gen.tosc_bytes(), \
        "mappings/jamgen.tosc is stale: run python -m bridge.surfaces_gen"
    assert surfaces_gen.PD_PATCH.read_text(encoding="utf-8") == surfaces_pd.pd_text(), \
        "pd_patches/jamgen.pd is stale: run python -m bridge.surfaces_gen"
    assert surfaces_osc.OSC_SESSION.read_text(encoding="utf-8") == surfaces_osc.session_text(), \
        "open_stage_control/jamgen.json is stale: run python -m bridge.surfaces_gen"
    assert surfaces_pd.pd_text() == surfaces_pd.pd_text() and surfaces_osc.session_text() == surfaces_osc.session_text()


def _maxpat_addresses() -> set[str]:
    patcher = json.loads(surfaces_gen.MAXPAT.read_text(encoding="utf-8"))["patcher"]
    out = set()
    for b in patcher["boxes"]:
        text = b["box"].get("text") or ""
        for atom in text.split():
            if atom.startswith("/"):
                out.add(atom)
    return out


def _tosc_addresses() -> set[str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(zlib.decompress(surfaces_gen.TOSC.read_bytes()).decode("utf-8"))
    return {"".join(p.findtext("value") for p in osc.find("path")) for osc in root.iter("osc")}


def _pd_addresses() -> set[str]:
    return surfaces_pd.pd_addresses(surfaces_gen.PD_PATCH.read_text(encoding="utf-8"))


def _osc_session_addresses() -> set[str]:
    return surfaces_osc.session_addresses(json.loads(surfaces_osc.OSC_SESSION.read_text(encoding="utf-8")))


@pytest.mark.parametrize("addresses", [_maxpat_addresses, _tosc_addresses, _pd_addresses, _osc_session_addresses],
                         ids=["maxpat", "tosc", "pd", "open-stage-control"])
def test_every_registry_control_is_on_the_generated_surfaces(addresses):
    found = addresses()
    missing = [n for n in REGISTRY if control_address(n) not in found]
    assert not missing, f"controls missing from the surface: {missing}"


def test_every_registry_control_has_an_osc_address_and_is_a_valid_mapping_target():
    known = set(builtin_addresses())
    for name, control in REGISTRY.items():
        assert control_address(name) in known
        rule = f'{{source: {{osc: "/test/{len(name)}"}}, target: "{name}"}}'
        if control.type == TRIGGER:
            rule = f'{{source: {{midi: {{note: 1}}}}, target: "{name}"}}'
        mapping_file, errors = parse(load_located(f"version: 1\nmappings:\n  - {rule}\n"), "t.yaml")
        assert not errors, errors
        assert mapping_file.mappings[0].target == name


@pytest.mark.parametrize("addresses", [_pd_addresses, _osc_session_addresses], ids=["pd", "open-stage-control"])
def test_pd_and_open_stage_control_send_only_addresses_the_daemon_knows(addresses):
    sent = {a for a in addresses() if not a.startswith("/label/") and a != "/root"}
    feedback_only = {osc_routes.TRANSPORT_ADDRESS, surfaces_pd.SYNC_ADDRESS, f"{osc_routes.SOUNDING_PREFIX}/prompts"}
    assert sent - feedback_only <= set(builtin_addresses()), sent - feedback_only - set(builtin_addresses())
    assert "/jamgen/subscribe" in sent


def _pd_routed() -> set[str]:
    """The addresses the Pd patch's route tree shows (rebuilt from its ``route`` objects' atoms)."""
    atoms = set()
    for line in surfaces_gen.PD_PATCH.read_text(encoding="utf-8").splitlines():
        parts = line.rstrip(";").split()
        if parts[:2] == ["#X", "obj"] and parts[4:5] == ["route"]:
            atoms |= {a.lstrip("\\") for a in parts[5:]}
    return atoms


def test_pd_patch_shows_bpm_harmony_sync_and_transport():
    text = surfaces_gen.PD_PATCH.read_text(encoding="utf-8")
    routed = _pd_routed()
    assert {"bpm", "harmony", "repeat", "sync", "transport", "prompt", "sounding", "text", "weight"} <= routed, routed
    assert "netsend -u -b" in text and "netreceive -u -b" in text and "oscparse" in text
    assert "oscformat -f i jamgen subscribe" in text
    for name in REGISTRY:  # every control can be steered from inside Pd
        assert f" r {surfaces_pd.receive_name(name)};" in text, name


def test_open_stage_control_session_shows_bpm_harmony_sync_and_transport():
    session = json.loads(surfaces_osc.OSC_SESSION.read_text(encoding="utf-8"))
    assert session["type"] == "session" and session["content"]["type"] == "root"
    found = _osc_session_addresses()
    for address in (control_address("bpm"), control_address("harmony"), control_address("repeat"),
                    surfaces_osc.SYNC_ADDRESS, osc_routes.TRANSPORT_ADDRESS):
        assert address in found, address
    widgets = session["content"]["widgets"]
    ids = [w["id"] for w in widgets]
    assert len(ids) == len(set(ids)), "widget ids must be unique"
    by_address = {w.get("address"): w for w in widgets}
    assert by_address[control_address("harmony")]["type"] == "input"
    bpm = REGISTRY["bpm"]
    assert by_address[control_address("bpm")]["range"] == {"min": bpm.minimum, "max": bpm.maximum}
    assert by_address[control_address("top_k")]["typeTags"] == "i"
    assert "/jamgen/subscribe" in session["content"]["onCreate"]


def test_the_sync_status_shown_is_the_one_the_daemon_sends():
    sync = pytest.importorskip("bridge.sync")
    assert surfaces_pd.SYNC_ADDRESS == surfaces_osc.SYNC_ADDRESS == sync.STATUS_ADDRESS
