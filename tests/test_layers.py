"""The layers hold: read every module's imports (ast, no import side effects) and refuse

- `dispatcher.core` importing the HTTP layer (`dispatcher.api`, `dispatcher.ui`), the CLI, the
  assembled service (`dispatcher.embedded`) or a web framework;
- `runner` importing `dispatcher` or `sandbox` (the runner image carries the runner alone);
- production code (`runner`, `dispatcher`) importing `sandbox` (the emulators are for tests
  and the embedded default, which reaches them over HTTP only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

RULES: dict[str, tuple[str, ...]] = {
    "dispatcher.core": (
        "dispatcher.api",
        "dispatcher.ui",
        "dispatcher.cli",
        "dispatcher.embedded",
        "fastapi",
        "starlette",
        "uvicorn",
        "sse_starlette",
        "sandbox",
    ),
    "runner": ("dispatcher", "sandbox"),
    "dispatcher": ("sandbox",),
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


def violations(root: Path = REPO) -> list[str]:
    bad: dict[tuple[str, int], str] = {}  # one finding per import statement
    for package, forbidden in RULES.items():
        folder = root / package.replace(".", "/")
        for path in sorted(folder.rglob("*.py")):
            where = str(path.relative_to(root))
            for line, name in imports(path, root):
                hit = next((f for f in forbidden if _within(name, f)), None)
                if hit is not None and (where, line) not in bad:
                    bad[where, line] = f"{where}:{line}: {package} must not import {hit} ({name})"
    return sorted(bad.values())


def test_the_layers_hold() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("package", "source", "hit"),
    [
        ("dispatcher/core", "from dispatcher.api.app import create_app\n", "dispatcher.api"),
        ("dispatcher/core", "from ..api import auth\n", "dispatcher.api"),
        ("dispatcher/core", "import fastapi\n", "fastapi"),
        ("runner", "from dispatcher.model import Status\n", "dispatcher"),
        ("runner/steps", "import sandbox.faults\n", "sandbox"),
        ("dispatcher/launchers", "from sandbox import server\n", "sandbox"),
    ],
)
def test_the_check_sees_a_forbidden_import(
    tmp_path: Path, package: str, source: str, hit: str
) -> None:
    module = tmp_path / package / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and f"must not import {hit}" in found[0], found
