"""The benchmark modules import each other without a cycle; benchmarks.common imports none of them."""
from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def imports_of(path: Path) -> set[str]:
    """Names of the benchmarks modules that `path` imports anywhere (top level or inside a function)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1:
                names |= {mod.split(".")[0]} if mod else {a.name for a in node.names}
            elif mod.startswith("benchmarks."):
                names.add(mod.split(".")[1])
            elif mod == "benchmarks":
                names |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("benchmarks.")}
    return names


def graph() -> dict[str, set[str]]:
    mods = {p.stem: p for p in BENCH.glob("*.py") if p.stem != "__init__"}
    return {m: imports_of(p) & set(mods) - {m} for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(g[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n] if n in path else [m, n]
            if n not in state:
                found = visit(n, path + [n])
                if found:
                    return found
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return None


def test_benchmark_modules_import_each_other_without_a_cycle():
    g = graph()
    assert "run" in g and "report" in g
    assert find_cycle(g) is None, " -> ".join(find_cycle(g))


def test_common_imports_no_other_benchmark_module():
    assert graph()["common"] == set()


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
