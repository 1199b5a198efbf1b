"""The house rules that can be checked mechanically: no function in cptjax/ over 60 lines, and the
benchmarks import one way (reference.py uses fit_batch.py's generators; fit_batch.py imports
nothing from reference.py)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_no_function_over_60_lines():
    long = []
    for path in sorted((ROOT / "cptjax").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def _imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_benchmarks_import_one_way():
    assert "reference" not in _imports(ROOT / "benchmarks" / "fit_batch.py")
    assert "fit_batch" in _imports(ROOT / "benchmarks" / "reference.py")
