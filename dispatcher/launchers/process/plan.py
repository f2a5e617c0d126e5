"""One local runner process, as data (pure): `process_plan(spec, ...)` is the argv, environment
and files of a `forge-runner` process run under `_wrap.py` (which keeps its exit status on disk),
everything in the attempt's folder. Secrets travel in a file (`FORGE_ENV_FILE`), never in the
environment or the argv: `refuse_secret_values` checks the finished plan for every value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dispatcher.core.ports import RunSpec
from dispatcher.core.secrets import is_secret_name
from dispatcher.launchers.common import check_plain_env, refuse_secret_values, runner_command

RESUME_FILE = "resume.jsonl"  # beside secrets.env in the attempt's folder
# What a local runner process inherits from the dispatcher: nothing else (no token can leak in).
INHERITED = ("PATH", "LANG", "LC_ALL", "TZ")
WRAPPER = Path(__file__).with_name("_wrap.py")


@dataclass(frozen=True)
class ProcessPlan:
    """One runner process: the wrapper's argv (runner argv inside), its environment and files.
    Every path is inside `attempt_dir`, which `remove` deletes."""

    argv: tuple[str, ...]
    env: dict[str, str]
    attempt_dir: Path
    cwd: Path
    home: Path
    tmp: Path
    stdout: Path
    stderr: Path
    secrets_file: Path
    resume_file: Path | None


def default_base_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a runner process keeps of the dispatcher's environment: `INHERITED` only, with
    the Python interpreter's folder first on PATH (where `forge-runner` was installed)."""
    environ = os.environ if environ is None else environ
    base = {k: environ[k] for k in INHERITED if environ.get(k)}
    here = str(Path(sys.executable).parent)
    parts = [p for p in base.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep) if p]
    base["PATH"] = os.pathsep.join([here, *(p for p in parts if p != here)])
    return base


def attempt_dir(workdir: Path, spec: RunSpec) -> Path:
    return workdir / spec.name


def process_plan(
    spec: RunSpec,
    workdir: Path,
    runner_argv: Sequence[str],
    base_env: Mapping[str, str],
    *,
    python: str = sys.executable,
    wrapper: Path = WRAPPER,
) -> ProcessPlan:
    """The local process of one attempt. `runner_argv` starts forge-runner (e.g.
    `python -m runner.cli`); the wrapper (`python -I -S _wrap.py <attempt dir> -- ...`) runs it
    in its own process group and writes its exit status to `exit.json`. Environment: `base_env`
    (see `default_base_env`), then `spec.env`, then HOME and TMPDIR in the attempt folder,
    `FORGE_DEPLOY_ID` and `FORGE_ENV_FILE` (the 0600 secrets file). No secret value anywhere."""
    if not workdir.is_absolute():
        raise ValueError(f"workdir must be an absolute path, got {str(workdir)!r}")
    if not Path(spec.build_dir).is_absolute():
        raise ValueError(f"build_dir must be an absolute path, got {str(spec.build_dir)!r}")
    if not runner_argv:
        raise ValueError("runner_argv is empty: expected e.g. python -m runner.cli")
    check_plain_env(spec.env)
    for key in list(base_env) + list(spec.env):
        if is_secret_name(key):
            raise ValueError(f"{key} looks like a secret: it never goes in a runner's environment")
    folder = attempt_dir(workdir, spec)
    secrets_file = folder / "secrets.env"
    resume_file = folder / RESUME_FILE if spec.resume_events is not None else None
    home, tmp = folder / "home", folder / "tmp"
    fixed = {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "FORGE_DEPLOY_ID": spec.deployment_id,
        "FORGE_ENV_FILE": str(secrets_file),
    }
    for key in ("FORGE_DEPLOY_ID", "FORGE_ENV_FILE"):
        if key in spec.env and spec.env[key] != fixed[key]:
            raise ValueError(
                f"{key} is set by the launcher to {fixed[key]!r}, got {spec.env[key]!r}"
            )
    env = {**base_env, **spec.env, **fixed}
    command = runner_command(
        spec, str(spec.build_dir), str(resume_file) if resume_file is not None else None
    )
    argv = (python, "-I", "-S", str(wrapper), str(folder), "--", *runner_argv, *command)
    refuse_secret_values(spec.secrets, {"argv": argv, "environment": env})
    return ProcessPlan(
        argv=argv,
        env=env,
        attempt_dir=folder,
        cwd=tmp,
        home=home,
        tmp=tmp,
        stdout=folder / "stdout.jsonl",
        stderr=folder / "stderr.log",
        secrets_file=secrets_file,
        resume_file=resume_file,
    )
