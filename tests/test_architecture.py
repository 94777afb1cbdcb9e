"""The import rules of docs/architecture.md, checked by parsing every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ["keys", "identity", "signing", "verification", "api", "wallet"]
WEB_FRAMEWORKS = {"fastapi", "starlette", "uvicorn"}

# package -> packages of ours it must never import
FORBIDDEN = {
    "keys": {"identity", "signing", "verification", "api", "wallet"},
    "identity": {"signing", "verification", "api", "wallet"},
    "verification": {"signing", "identity", "api", "wallet"},
    "signing": {"identity", "api", "wallet"},
    "wallet": {"keys", "identity", "signing", "verification", "api"},
    "api": {"wallet"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_layers(package: str) -> None:
    offenders = []
    for module in _modules(package):
        imported = _imports(module)
        bad = imported & FORBIDDEN[package]
        if package != "api":
            bad |= imported & WEB_FRAMEWORKS
        if bad:
            offenders.append(f"{module.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_every_package_exists_with_a_docstring() -> None:
    for package in PACKAGES:
        init = ROOT / package / "__init__.py"
        assert init.exists(), package
        assert ast.get_docstring(ast.parse(init.read_text())), f"{package}/__init__.py needs a docstring"


def test_the_rule_checker_catches_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from api.app import create_app\nimport fastapi\n")
    assert _imports(module) == {"api", "fastapi"}
