"""Where a deployment's build directory may be: inside `FORGE_BUILDS_ROOT`, and nowhere else.

A request names its build directory relative to the root (`app-1`) or absolutely
(`/srv/builds/app-1`). Either way the path is resolved (every symlink followed) before it is
compared with the resolved root, so neither `..` nor a symlink can lead out of it. The root
itself is refused too: it holds every build, not one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MAX_BUILD_DIR = 4096  # PATH_MAX on Linux


class BuildDirError(ValueError):
    """The build directory is unusable; the message says why (safe to show the caller)."""


def _shown(raw: str) -> str:
    return json.dumps(raw[:80] + ("..." if len(raw) > 80 else ""), ensure_ascii=True)


def resolve_build_dir(builds_root: Path, raw: str) -> Path:
    """The resolved directory `raw` names inside `builds_root`, or BuildDirError naming the
    problem (empty, NUL byte, too long, outside the root, missing, not a directory)."""
    shown = _shown(raw)
    if raw.strip() == "":
        raise BuildDirError("build_dir is empty")
    if "\x00" in raw:
        raise BuildDirError(f"build_dir {shown} contains a NUL byte")
    if len(raw) > MAX_BUILD_DIR:
        raise BuildDirError(
            f"build_dir is too long: {len(raw)} characters, at most {MAX_BUILD_DIR}"
        )
    try:
        root = builds_root.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        # The operator's mistake, not the caller's: say so without the host's path.
        raise BuildDirError(f"the builds root is unusable ({type(e).__name__})") from e
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = root / candidate
    # Lexically first: `..` must not climb out even through directories that do not exist.
    lexical = Path(os.path.normpath(candidate))
    if not lexical.is_relative_to(root) and not lexical.is_relative_to(builds_root):
        raise BuildDirError(f"build_dir {shown} is outside the builds root")
    try:
        resolved = candidate.resolve(strict=False)
    except (ValueError, OSError, RuntimeError) as e:
        raise BuildDirError(f"build_dir {shown} cannot be resolved: {type(e).__name__}") from e
    if not resolved.is_relative_to(root):
        raise BuildDirError(f"build_dir {shown} leads outside the builds root (through a symlink)")
    if resolved == root:
        raise BuildDirError(f"build_dir {shown} is the builds root itself; name a directory in it")
    try:
        exists, is_dir = resolved.exists(), resolved.is_dir()
    except (ValueError, OSError) as e:
        raise BuildDirError(f"build_dir {shown} cannot be read: {type(e).__name__}") from e
    if not exists:
        raise BuildDirError(f"build_dir {shown} does not exist in the builds root")
    if not is_dir:
        raise BuildDirError(f"build_dir {shown} is not a directory")
    return resolved
