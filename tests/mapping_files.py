"""Mapping files for tests: write one, and load one expecting its errors (the file's path shown as ``F``)."""

from __future__ import annotations

import pytest

from bridge.mappings import MappingError, load_file


def write(tmp_path, text, name="m.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def errors_of(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as info:
        load_file(path)
    return [e.replace(path, "F") for e in info.value.errors]
