"""The package's shape, read from its source: the pure core imports no engine, no module imports itself back
through others, and functions stay small (a longer one says why above or on its `def`: `# shape: <reason>`)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cerebro_ops"
ENGINES = ("airflow", "pyspark", "tensorflow", "keras", "mlflow", "petastorm", "optuna", "fsspec")
MAX_LINES, MAX_PARAMS = 60, 6


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules `module` imports anywhere in its file (lazy imports included: a cycle through a
    function-level import is still a cycle in the design)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    known = _modules()
    graph = {m: _imported(m, p, known) for m, p in known.items()}
    assert graph["cerebro_ops.study"], "the import graph came out empty"
    assert _cycles(graph) == []


def test_core_imports_no_engine():
    core = sorted(m for m in _modules() if m.startswith("cerebro_ops.core."))
    assert len(core) >= 10, core
    code = ("import importlib, sys\n"
            f"for m in {core!r}:\n"
            "    importlib.import_module(m)\n"
            f"bad = sorted({{n.split('.')[0] for n in sys.modules}} & set({ENGINES!r}))\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _oversized(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = node.args
        params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
        params += ["*"] * bool(args.vararg) + ["**"] * bool(args.kwarg)
        length = node.end_lineno - node.lineno + 1
        top = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1  # 0-based first line
        while top > 0 and lines[top - 1].strip().startswith("#"):
            top -= 1  # the comment block right above the def
        header = "\n".join(lines[top:node.body[0].lineno - 1])
        if (length > MAX_LINES or len(params) > MAX_PARAMS) and "# shape:" not in header:
            found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines, {len(params)} params")
    return found


@pytest.mark.parametrize("folder", ["cerebro_ops", "dags", "plugins", "scripts"])
def test_functions_are_small_or_say_why(folder):
    found = [f for path in sorted((REPO / folder).rglob("*.py")) for f in _oversized(path)]
    assert found == [], "\n".join(found)


def test_the_shape_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def long():\n{body}\n\n\ndef wide(a, b, c, d, e, f, g):\n    pass\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert [f.split(" ")[1] for f in _oversized(tmp_path / "m.py")] == ["long:", "wide:"]
    finally:
        REPO = saved
