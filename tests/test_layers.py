"""The layers hold: read every module's imports (ast, no import side effects) and refuse

- `dispatcher.core` importing an adapter (the web layer, the store, the launchers, the mirror,
  the callbacks, the CLI, the assembled service) or a web framework, and reaching any driver
  module (sqlite3, psycopg, docker, kubernetes, an HTTP client) by any chain of imports: the
  adapters speak to the core in its own words (`core.ports`, `core.errors`);
- the web layer (`dispatcher.api`, `dispatcher.ui`, `dispatcher.web`) reaching
  `dispatcher.store` by any chain of imports, and the pages and the API importing each other
  (they sit side by side in `dispatcher.web.app`);
- `runner` importing `dispatcher` or `sandbox` (the runner image carries the runner alone);
- production code (`runner`, `dispatcher`) importing `sandbox` (the emulators are for tests
  and the embedded default, which reaches them over HTTP only).

Relative imports are resolved, so `from ..store import sql` counts as `dispatcher.store.sql`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runner", "dispatcher", "sandbox")
DRIVERS = (
    "sqlite3",
    "psycopg",
    "psycopg_pool",
    "docker",
    "kubernetes",
    "urllib3",
    "requests",
    "httpx",
    "supabase",
)
WEB = ("dispatcher.api", "dispatcher.ui", "dispatcher.web")

# package -> what its modules may not import themselves
RULES: dict[str, tuple[str, ...]] = {
    "dispatcher.core": (
        *WEB,
        "dispatcher.store",
        "dispatcher.launchers",
        "dispatcher.mirror",
        "dispatcher.callbacks",
        "dispatcher.client",
        "dispatcher.cli",
        "dispatcher.embedded",
        "fastapi",
        "starlette",
        "uvicorn",
        "sse_starlette",
        "sandbox",
    ),
    "dispatcher.ui": ("dispatcher.api",),
    "dispatcher.api": ("dispatcher.ui",),
    "runner": ("dispatcher", "sandbox"),
    "dispatcher": ("sandbox",),
}
# package -> what no chain of imports from its modules may reach
REACHES: dict[str, tuple[str, ...]] = {
    "dispatcher.core": DRIVERS,
    **{web: ("dispatcher.store",) for web in WEB},
}


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = _module(path, root).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _sources(root: Path) -> dict[str, Path]:
    """Every module of the project's packages under `root`, by name."""
    return {
        _module(path, root): path
        for package in PACKAGES
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
    }


def _loaded(name: str, modules: dict[str, Path]) -> list[str]:
    """The project's modules an import of `name` runs: the longest known module it names
    (an imported name may be a class or function inside it) and the packages above it."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in modules]


def _reached(start: str, modules: dict[str, Path], root: Path) -> dict[str, str]:
    """Every import made by running `start`, through the project's modules: name -> the chain
    of modules that leads to it."""
    chains: dict[str, str] = {}
    todo, seen = [start], {start}
    while todo:
        current = todo.pop()
        for _, name in imports(modules[current], root):
            chains.setdefault(name, current)
            for module in _loaded(name, modules):
                if module not in seen:
                    seen.add(module)
                    todo.append(module)
    return chains


def violations(root: Path = REPO) -> list[str]:
    bad: dict[tuple[str, int | str], str] = {}  # one per import statement, one per reach
    for package, forbidden in RULES.items():
        folder = root / package.replace(".", "/")
        for path in sorted(folder.rglob("*.py")):
            where = str(path.relative_to(root))
            for line, name in imports(path, root):
                hit = next((f for f in forbidden if _within(name, f)), None)
                if hit is not None and (where, line) not in bad:
                    bad[where, line] = f"{where}:{line}: {package} must not import {hit} ({name})"
    modules = _sources(root)
    for package, unreachable in REACHES.items():
        for module in (m for m in modules if _within(m, package)):
            for name, via in _reached(module, modules, root).items():
                hit = next((f for f in unreachable if _within(name, f)), None)
                if hit is not None:
                    message = f"{module} must not reach {hit} ({name}, imported by {via})"
                    bad.setdefault((module, hit), message)
    return sorted(bad.values())


def _tree(tmp_path: Path, files: Iterable[tuple[str, str]]) -> Path:
    for name, source in files:
        module = tmp_path / name
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(source)
    return tmp_path


def test_the_layers_hold() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("package", "source", "hit"),
    [
        ("dispatcher/core", "from dispatcher.api.app import create_app\n", "dispatcher.api"),
        ("dispatcher/core", "from ..api import auth\n", "dispatcher.api"),
        ("dispatcher/core", "import fastapi\n", "fastapi"),
        ("dispatcher/core", "from dispatcher.store.sql import SQLStore\n", "dispatcher.store"),
        ("dispatcher/ui", "from ..api.routes.events import sse_chunk\n", "dispatcher.api"),
        ("runner", "from dispatcher.model import Status\n", "dispatcher"),
        ("runner/steps", "import sandbox.faults\n", "sandbox"),
        ("dispatcher/launchers", "from sandbox import server\n", "sandbox"),
    ],
)
def test_the_check_sees_a_forbidden_import(
    tmp_path: Path, package: str, source: str, hit: str
) -> None:
    found = violations(_tree(tmp_path, [(f"{package}/probe.py", source)]))
    assert len(found) == 1 and f"must not import {hit}" in found[0], found


@pytest.mark.parametrize(
    ("files", "hit"),
    [
        ([("dispatcher/core/outages.py", "import sqlite3\n")], "sqlite3"),
        ([("dispatcher/core/x.py", "import psycopg_pool\n")], "psycopg_pool"),
        (
            [
                ("dispatcher/core/service.py", "from dispatcher import settings\n"),
                ("dispatcher/settings.py", "from dispatcher.launchers import docker\n"),
                ("dispatcher/launchers/__init__.py", ""),
                ("dispatcher/launchers/docker.py", "import docker\n"),
            ],
            "docker",
        ),
        (
            [("dispatcher/api/app.py", "from dispatcher.store.base import Store\n")],
            "dispatcher.store",
        ),
        ([("dispatcher/api/routes/x.py", "from ...store import sql\n")], "dispatcher.store"),
        ([("dispatcher/web/app.py", "from ..store.open import open_store\n")], "dispatcher.store"),
        (
            [
                ("dispatcher/ui/routes.py", "from dispatcher.core import hub\n"),
                ("dispatcher/core/hub.py", "from dispatcher.store.base import Store\n"),
            ],
            "dispatcher.store",
        ),
    ],
)
def test_the_check_follows_imports_to_a_driver_or_the_store(
    tmp_path: Path, files: list[tuple[str, str]], hit: str
) -> None:
    """What today's (399e956) dispatcher did, and what a chain of imports would hide: each is
    refused, the chain named."""
    found = violations(_tree(tmp_path, files))
    assert any(f"must not reach {hit}" in f or f"must not import {hit}" in f for f in found), found
