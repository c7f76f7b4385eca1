"""The import rules of docs/architecture.md, enforced by reading every module's imports.

Why a test: a house plan that nothing checks decays one convenient import at a time. Each rule below
is a row of docs/architecture.md's "Rules between the parts"; the test walks the AST of every module
under generator/ and bridge/ (imports inside functions count too: a lazy import is still a
dependency) and fails naming the file, the line and the rule.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("generator", "bridge")
MAX_MODULE_LINES = 600

RUNTIME = ("generator.core", "generator.audio", "generator.symbolic", "generator.groove", "generator.backends",
           "generator.mrt2")
FAMILIES = ("generator.audio", "generator.symbolic", "generator.groove", "generator.backends", "generator.mrt2")
# The one exception to "families are siblings": the native MRT2 engine runs the official weights under the
# adapter's controls and asset checks, so it uses exactly those two modules (one implementation, not two).
FAMILY_MAY_USE = {"generator.mrt2": ("generator.backends.magenta_assets", "generator.backends.magenta_rt2")}
# What bridge/ may import from generator/: the loader and the contract, the model list, and the
# CLI entry points of the data and training commands (dispatched, not used).
BRIDGE_MAY_USE = ("generator", "generator.core.contract", "generator.core.midi_file", "generator.models",
                  "generator.data.__main__", "generator.train.__main__")


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def project_imports() -> dict[str, list[tuple[str, int]]]:
    """module -> [(imported project module, line)], including imports inside functions; ``from
    pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``."""
    modules = {}
    files = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            files[_module_name(path)] = path
    for name, path in files.items():
        deps = []
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] in PACKAGES]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                if target.split(".")[0] not in PACKAGES:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.append((sub if sub in files else target, node.lineno))
        modules[name] = deps
    return modules


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _rule_violations(imports: dict[str, list[tuple[str, int]]]) -> list[str]:
    bad = []
    for mod, deps in imports.items():
        for dep, line in deps:
            where = f"{mod.replace('.', '/')}.py:{line}: imports {dep}"
            if mod.startswith("generator") and dep.startswith("bridge"):
                bad.append(f"{where} (generator/ never imports bridge/)")
            if _within(mod, ("generator.core",)) and not _within(dep, ("generator.core",)):
                bad.append(f"{where} (the core imports only the core)")
            for family in FAMILIES:
                if (_within(mod, (family,)) and _within(dep, FAMILIES) and not _within(dep, (family,))
                        and dep not in FAMILY_MAY_USE.get(family, ())):
                    bad.append(f"{where} (families are siblings: they share only generator.core)")
            run_time = _within(mod, RUNTIME) or mod in ("generator", "generator.models")
            if run_time and _within(dep, ("generator.train", "generator.data")):
                bad.append(f"{where} (run-time code never imports training or data code)")
            if _within(mod, ("generator.data",)) and _within(dep, ("generator.train",)):
                bad.append(f"{where} (data never imports training)")
            if mod.startswith("bridge") and dep.startswith("generator") and dep not in BRIDGE_MAY_USE:
                bad.append(f"{where} (bridge/ uses only generator's loader, contract and CLI entry points)")
            if mod == "bridge.controls" and dep.startswith("generator"):
                bad.append(f"{where} (the control registry is plain data)")
    return bad


def _cycles(imports: dict[str, list[tuple[str, int]]], prefix: str) -> list[list[str]]:
    """Strongly connected groups of more than one module under ``prefix`` (Tarjan)."""
    graph = {m: sorted({d for d, _ in deps if d in imports and d.startswith(prefix) and d != m})
             for m, deps in imports.items() if m.startswith(prefix)}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_import_rules_hold():
    bad = _rule_violations(project_imports())
    assert not bad, "import rules of docs/architecture.md broken:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", ["bridge", "generator.core", "generator.audio", "generator.symbolic",
                                     "generator.groove", "generator.mrt2"])
def test_no_import_cycles(package):
    imports = project_imports()
    # A package's __init__ re-exporting its modules is not a cycle of concerns.
    imports = {m: [(d, n) for d, n in deps if d != package] for m, deps in imports.items() if m != package}
    assert not _cycles(imports, package + "."), f"import cycles in {package}: {_cycles(imports, package + '.')}"


def test_the_rules_catch_a_violation():
    """The checker itself: a core module importing a family, a family importing a sibling, run-time
    code importing training code, and a two-module cycle are all reported."""
    fake = {
        "generator.core.contract": [("generator.audio.system", 3)],
        "generator.symbolic.system": [("generator.audio.style", 5), ("generator.train.rundir", 6)],
        "bridge.controls": [("generator.core.contract", 7)],
        "bridge.a": [("bridge.b", 1)],
        "bridge.b": [("bridge.a", 1)],
    }
    bad = "\n".join(_rule_violations(fake))
    assert "the core imports only the core" in bad
    assert "families are siblings" in bad
    assert "run-time code never imports training" in bad
    assert "plain data" in bad
    assert _cycles(fake, "bridge.") == [["bridge.a", "bridge.b"]]


def test_modules_stay_small():
    big = [f"{p.relative_to(ROOT)}: {n} lines" for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {big}"
