"""Every file a package reads at run time is installed with it. The images install the packages
(`pip install .`), not the source tree, so a template or static file that no pattern of
pyproject.toml's `[tool.setuptools.package-data]` names is missing there and nowhere else: the
dispatcher image once had no `ui/templates` or `ui/static` (its pages answered errors, and since
the static files are hashed at import, the container stopped at start)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from tests.support.clis import REPO


def test_every_data_file_of_a_package_is_named_in_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns: dict[str, list[str]] = config["tool"]["setuptools"]["package-data"]
    missing = []
    for package in ("runner", "dispatcher", "sandbox"):
        root = REPO / package
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix in {".py", ".pyc"}:
                continue
            relative = path.relative_to(root).as_posix()
            if not any(fnmatch(relative, p) for p in patterns.get(package, [])):
                missing.append(f"{package}/{relative}")
    assert not missing, "not installed with their package (pyproject.toml package-data):\n" + (
        "\n".join(missing)
    )
