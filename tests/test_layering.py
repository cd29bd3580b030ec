"""The layering of ARCHITECTURE.md, held by reading every module's imports (ast).

- ``domain/`` imports nothing of Wattline outside ``domain/``;
- ``store/`` imports nothing of ``pipeline``, ``jobs``, ``api`` or ``web``;
- ``sources/`` and ``simulator/`` do not import ``store``;
- SQLAlchemy is imported nowhere outside ``store/``;
- no SQL text outside ``store/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "wattline"
SQL_TEXT = re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b",
                      re.IGNORECASE | re.DOTALL)


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "store" and "migrations" in rel.parts:
            continue
        yield rel, ast.parse(path.read_text(), filename=str(path))


def _layer(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(tree: ast.AST, rel: Path) -> set[str]:
    names = set()
    package = ["wattline", *rel.parts[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def _wattline_layer(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "wattline" or len(parts) < 2:
        return None
    return parts[1]


def _violations():
    found = []
    for rel, tree in _modules():
        layer = _layer(rel)
        for name in sorted(_imports(tree, rel)):
            target = _wattline_layer(name)
            if name.split(".")[0] == "sqlalchemy" and layer != "store":
                found.append(f"{rel}: imports {name} (SQLAlchemy only in store/)")
            if target is None:
                continue
            if layer == "domain" and target != "domain":
                found.append(f"{rel}: domain/ imports {name}")
            if layer == "store" and target in {"pipeline", "jobs", "api", "web"}:
                found.append(f"{rel}: store/ imports {name}")
            if layer in {"sources", "simulator"} and target == "store":
                found.append(f"{rel}: {layer}/ imports {name}")
        if layer != "store":
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.search(node.value):
                    found.append(f"{rel}:{node.lineno}: SQL text outside store/")
    return found


def test_layers_import_only_what_the_architecture_allows():
    violations = sorted(set(_violations()))
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("source, expected", [
    ("from wattline.store import tables\n", "domain/ imports"),
    ("import sqlalchemy\n", "SQLAlchemy only in store/"),
    ("x = 'SELECT a FROM b'\n", "SQL text outside store/"),
])
def test_the_checker_sees_a_violation(tmp_path, monkeypatch, source, expected):
    """The checker itself can fail: a planted bad module in domain/ is reported."""
    fake = tmp_path / "wattline"
    (fake / "domain").mkdir(parents=True)
    (fake / "domain" / "bad.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    assert any(expected in v for v in _violations())
