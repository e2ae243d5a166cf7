"""The tree's shape: the README's layout lists every module, and imports point inward."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "hospes"

# What each part of hospes may import, besides itself and the standard library.
ALLOWED: dict[str, set[str]] = {
    "gemini": set(),
    "policy": {"gemini"},
    "store": {"gemini", "policy"},
    "app": {"gemini", "policy", "store"},
    "accounts": {"gemini", "policy", "store", "app"},
    # The admin capsule reads the server's counters and refusals (server/counters, refusals).
    "admin": {"gemini", "policy", "store", "app", "server"},
    "server": {"gemini", "policy", "store", "app", "selfsigned", "files"},
    "gateways": {"gemini", "policy", "store", "app", "files"},
    "client": {"gemini", "files", "selfsigned", "paths"},
    "files": set(),
    "paths": set(),
    "selfsigned": {"files"},
}


def _part(module: str) -> str:
    """``hospes.app.static`` -> ``app``."""
    return module.split(".")[1] if module.count(".") else ""


def _imports(path: Path) -> set[str]:
    """The hospes modules ``path`` imports (relative imports resolved)."""
    package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module == "hospes":
                found.update(f"hospes.{alias.name}" for alias in node.names)
            elif module.startswith("hospes."):
                found.add(module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hospes."))
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_inward(path):
    part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if part not in ALLOWED:
        return  # the outer ring (runner, config, cli, demo) may import anything
    bad = sorted(
        module
        for module in _imports(path)
        if _part(module) != part and _part(module) not in ALLOWED[part]
    )
    assert not bad, f"{path.relative_to(PACKAGE)} ({part}/) imports {bad}"


def test_readme_layout_lists_every_module():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Layout") :]
    block = section[section.index("```") : section.index("```", section.index("```") + 3)]
    words = set(re.findall(r"[\w]+(?:\.py|/)", block))
    missing = []
    for path in _modules():
        relative = path.relative_to(PACKAGE)
        if relative.name in {"__init__.py", "__main__.py"}:
            continue
        if relative.name not in words:
            missing.append(str(relative))
    for directory in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        if any(directory.glob("*.py")) and f"{directory.name}/" not in words:
            missing.append(f"{directory.name}/")
    assert not missing, f"README.md's layout section does not mention {missing}"


def test_no_two_public_classes_share_a_name():
    seen: dict[str, str] = {}
    clashes = []
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where = str(path.relative_to(PACKAGE))
                if node.name in seen:
                    clashes.append(f"{node.name}: {seen[node.name]} and {where}")
                seen[node.name] = where
    assert not clashes


def test_the_store_docstrings_name_every_implementation():
    """The store's package and interface say which implementations exist today, all of them.

    They once said SQLite was the only one, and promised a shared store, after
    the PostgreSQL store had landed.
    """
    classes = {
        node.name: node
        for path in sorted((PACKAGE / "store").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    }

    def derives_from_store(node: ast.ClassDef) -> bool:
        names = {base.id for base in node.bases if isinstance(base, ast.Name)}
        return "Store" in names or any(derives_from_store(classes[n]) for n in names & set(classes))

    def abstract(node: ast.ClassDef) -> bool:
        return any(
            isinstance(decorator, ast.Attribute) and decorator.attr == "abstractmethod"
            for item in node.body
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            for decorator in item.decorator_list
        )

    implementations = {
        name
        for name, node in classes.items()
        if name != "Store" and derives_from_store(node) and not abstract(node)
    }
    assert implementations == {"SQLiteStore", "PostgresStore"}
    modules = {name.lower().removesuffix("store") for name in implementations}
    package = ast.get_docstring(ast.parse((PACKAGE / "store" / "__init__.py").read_text()))
    interface = ast.get_docstring(ast.parse((PACKAGE / "store" / "base.py").read_text()))
    assert package is not None and interface is not None
    for module in modules:
        assert f"``{module}``" in package, module
    for name in implementations:
        assert name in interface, name
    for text in (package, interface):
        assert not re.search(r"\bwill implement|\btoday is SQLite|one implementation", text), text
