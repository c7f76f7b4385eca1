"""Bounded YAML loading that remembers the line of every value.

Mapping files are written by hand and edited while the daemon runs, so every error must point
at a line (``file:12: ...``). ``yaml.safe_load`` throws line numbers away; here we compose the
node graph (which keeps marks) and convert it ourselves into :class:`LDict` / :class:`LList`,
plain ``dict`` / ``list`` subclasses that also carry the 1-based line of each key and item.

The same walk is the defence against hostile files: size is capped before parsing, text must
be UTF-8, and alias expansion ("billion laughs") is bounded by counting every node visited,
aliases included, so a 1 kB file can never expand into gigabytes.

Threading: pure functions, safe on any thread (start-up, the mapping watcher, learn).
"""

from __future__ import annotations

import os
from typing import Any

import yaml

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 50_000  # nodes visited, aliases expanded each time they are used
MAX_DEPTH = 32


class YamlSourceError(ValueError):
    """The file cannot be read as YAML at all; ``line`` is 1-based (0 = whole file)."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


class LDict(dict):
    """A mapping with ``line`` (of the mapping) and ``key_lines[key]`` (of each key)."""

    line: int = 0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LList(list):
    """A sequence with ``line`` (of the sequence) and ``item_lines[i]`` (of each item)."""

    line: int = 0

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


def read_text(path: str | os.PathLike) -> str:
    """Read a mapping file as UTF-8 text, refusing huge or binary files.

    Raises:
      YamlSourceError: too large, not UTF-8, or unreadable (message has no file prefix).
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise YamlSourceError(0, f"cannot read file: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise YamlSourceError(0, f"file is larger than {MAX_FILE_BYTES // 1000} kB; refusing to parse it")
    return decode_text(data)


def decode_text(data: bytes) -> str:
    """UTF-8 (optionally with BOM) to str; the error names the line of the first bad byte."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise YamlSourceError(
            line, f"file is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise YamlSourceError(line, "file contains NUL bytes; is it a binary file?")
    return text


def compose(text: str) -> yaml.Node | None:
    """Parse ``text`` into one YAML node graph (None for an empty document).

    Raises:
      YamlSourceError: syntax errors, several documents.
    """
    loader = yaml.SafeLoader(text)
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = err.problem or err.context or "invalid YAML"
        raise YamlSourceError(line, f"YAML syntax error: {what}") from None
    except yaml.YAMLError as err:  # e.g. "expected a single document"
        raise YamlSourceError(0, f"YAML error: {' '.join(str(err).split())}") from None
    except RecursionError:  # the composer recurses once per nesting level
        raise YamlSourceError(0, "document is nested too deeply; refusing it") from None
    finally:
        loader.dispose()


class _Converter:
    """Node graph -> LDict/LList/scalars, counting nodes so aliases cannot explode."""

    def __init__(self) -> None:
        self.visited = 0
        self._constructor = yaml.SafeLoader("")  # only its scalar constructors are used

    def convert(self, node: yaml.Node, depth: int = 0) -> Any:
        self.visited += 1
        line = node.start_mark.line + 1
        if self.visited > MAX_NODES:
            raise YamlSourceError(line, f"document expands to more than {MAX_NODES} nodes "
                                        "(too many aliases?); refusing it")
        if depth > MAX_DEPTH:
            raise YamlSourceError(line, f"document is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            out = LDict()
            out.line = line
            for key_node, value_node in node.value:
                key = self.convert(key_node, depth + 1)
                key_line = key_node.start_mark.line + 1
                try:
                    hash(key)
                except TypeError:
                    raise YamlSourceError(key_line, "mapping keys must be plain scalars") from None
                if key in out:
                    raise YamlSourceError(key_line, f"duplicate key {key!r} (first on line {out.key_lines[key]})")
                out[key] = self.convert(value_node, depth + 1)
                out.key_lines[key] = key_line
            return out
        if isinstance(node, yaml.SequenceNode):
            out_list = LList()
            out_list.line = line
            for item in node.value:
                out_list.append(self.convert(item, depth + 1))
                out_list.item_lines.append(item.start_mark.line + 1)
            return out_list
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise YamlSourceError(line, f"bad value: {problem}") from None
        except (ValueError, OverflowError) as err:  # e.g. a timestamp like 2024-13-45
            raise YamlSourceError(line, f"bad value {node.value!r}: {err}") from None


def load_located(text: str) -> Any:
    """Parse YAML text into LDict/LList/scalars with line numbers (None if empty).

    Raises:
      YamlSourceError: syntax errors, alias bombs, over-deep nesting, duplicate keys.
    """
    node = compose(text)
    if node is None:
        return None
    return _Converter().convert(node)
