"""The dispatcher's settings: one tree of typed values from the environment, one section per
part (`hook`, `store`, `attempts`, `launcher`, `runner`), validated at start with errors
naming the variable.

The runner's settings are its own variable names (`GH_TOKEN`, `SUPABASE_ACCESS_TOKEN`,
`VERCEL_TOKEN`, `GH_ORG`, ... and the `FORGE_*_URL` / `FORGE_CA_FILE` / `SUPABASE_PROFILE`
overrides: `runner.providers.catalog.RUNNER_VARIABLES`): the dispatcher hands each deploy
exactly those, tokens in its secrets file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dispatcher.launchers.kubernetes.settings import (
    KubernetesSettings,
    kubernetes_settings_from_env,
)
from runner.providers.catalog import RUNNER_VARIABLES
from runner.sealing import new_keypair

LAUNCHERS = ("process", "docker", "kubernetes")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class HookSettings:
    """The deploy hook: its HMAC key, where builds may be, where status changes are POSTed."""

    secret: bytes = field(repr=False)  # FORGE_HOOK_SECRET(_FILE)
    builds_root: Path  # FORGE_BUILDS_ROOT
    callback_url: str | None = None  # FORGE_CALLBACK_URL


@dataclass(frozen=True)
class StoreSettings:
    url: str  # FORGE_DATABASE_URL: sqlite:///... (default, in the state dir) or postgresql://
    password: str = field(default="", repr=False)  # FORGE_DATABASE_PASSWORD(_FILE)


@dataclass(frozen=True)
class AttemptSettings:
    """How this replica runs attempts."""

    max_concurrent: int = 4  # FORGE_MAX_CONCURRENT
    deadline_s: float = 3600.0  # FORGE_DEADLINE_S
    idle_timeout_s: float = 900.0  # FORGE_IDLE_TIMEOUT_S
    cancel_grace_s: float = 20.0  # FORGE_CANCEL_GRACE_S
    replica_id: str = field(default_factory=socket.gethostname)  # FORGE_REPLICA_ID


@dataclass(frozen=True)
class LauncherSettings:
    kind: str = "process"  # FORGE_LAUNCHER: process | docker | kubernetes
    runner_image: str = "forge-runner:dev"  # FORGE_RUNNER_IMAGE
    docker_network: str = "bridge"  # FORGE_DOCKER_NETWORK
    kubernetes: KubernetesSettings | None = None  # FORGE_K8S_*, with the kubernetes kind


@dataclass(frozen=True)
class RunnerSettings:
    """What every deploy's runner is handed."""

    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # RUNNER_VARIABLES set
    seal_public_key: str = ""  # FORGE_SEAL_PUBLIC_KEY (else a pair kept in the state dir)
    seal_private_key: str = field(default="", repr=False)  # FORGE_SEAL_PRIVATE_KEY


@dataclass(frozen=True)
class Settings:
    hook: HookSettings
    store: StoreSettings
    state_dir: Path  # FORGE_STATE_DIR
    attempts: AttemptSettings = field(default_factory=AttemptSettings)
    launcher: LauncherSettings = field(default_factory=LauncherSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    forgeboard: Mapping[str, str] = field(default_factory=dict, repr=False)  # dispatcher.mirror


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} is malformed: expected a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} is out of range: {low} to {high}, got {raw}")
    return value


def secret_setting(env: Mapping[str, str], name: str) -> str:
    """The secret `name`: its variable, or the first line of the file `name`_FILE names. A file
    is how compose and Docker secrets hand one in, so it shows in no `docker inspect`; setting
    both is an error, an unreadable or empty file too. "" when neither is set."""
    value = env.get(name, "")
    path = env.get(f"{name}_FILE", "")
    if not path:
        return value
    if value:
        raise ConfigError(f"{name} and {name}_FILE are both set: use one")
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"{name}_FILE names an unreadable file: {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}_FILE names a file that is not UTF-8 text: {path}") from None
    first = lines[0].strip() if lines else ""
    if not first:
        raise ConfigError(f"{name}_FILE names a file whose first line is empty: {path}")
    return first


def _store(env: Mapping[str, str], state_dir: Path) -> StoreSettings:
    """FORGE_DATABASE_URL (SQLite in the state dir by default) and the password of a
    PostgreSQL URL that carries none (FORGE_DATABASE_PASSWORD or its _FILE)."""
    url = env.get("FORGE_DATABASE_URL") or f"sqlite:///{state_dir / 'dispatcher.db'}"
    if not re.match(r"^(sqlite:///.+|postgres(ql)?://.+)$", url):
        raise ConfigError(
            "FORGE_DATABASE_URL is malformed: expected sqlite:///PATH or postgresql://..."
        )
    password = secret_setting(env, "FORGE_DATABASE_PASSWORD")
    if password and url.startswith("sqlite"):
        raise ConfigError("FORGE_DATABASE_PASSWORD is set, but FORGE_DATABASE_URL is SQLite")
    if password and urlsplit(url).password is not None:
        raise ConfigError(
            "FORGE_DATABASE_PASSWORD is set, but FORGE_DATABASE_URL carries a password too: use one"
        )
    return StoreSettings(url, password)


def _seal_keys(env: Mapping[str, str], state_dir: Path) -> tuple[str, str]:
    """FORGE_SEAL_PRIVATE_KEY (+ FORGE_SEAL_PUBLIC_KEY), else a key pair kept in the state dir
    (mode 0600) for the embedded default."""
    private = env.get("FORGE_SEAL_PRIVATE_KEY")
    public = env.get("FORGE_SEAL_PUBLIC_KEY")
    if private and public:
        return public, private
    if private or public:
        raise ConfigError("FORGE_SEAL_PUBLIC_KEY and FORGE_SEAL_PRIVATE_KEY go together")
    key_file = state_dir / "seal.key"
    if not key_file.exists():
        _create_once(key_file, "{}\n{}\n".format(*new_keypair()))
    words = key_file.read_text().split()
    if len(words) != 2:
        raise ConfigError(
            f"{key_file} is malformed: expected a public and a private key; remove it to make "
            "a new pair, or set FORGE_SEAL_PUBLIC_KEY and FORGE_SEAL_PRIVATE_KEY"
        )
    return words[0], words[1]


def _create_once(path: Path, text: str) -> None:
    """Write `path` (mode 0600) unless it exists, atomically: the content goes to a private
    temporary file first, then a hard link names it. Two dispatchers starting together on a
    new state dir thus agree on one file, and neither can read it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:  # mkstemp: mode 0600
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # the other one's file won: use it
            os.link(tmp, path)
    finally:
        Path(tmp).unlink()


def load(environ: Mapping[str, str] | None = None, *, require_secret: bool = True) -> Settings:
    env = dict(os.environ if environ is None else environ)
    state_dir = Path(env.get("FORGE_STATE_DIR") or ".forge-dispatcher").resolve()
    hook = _hook(env, require_secret)
    store = _store(env, state_dir)
    launcher = _launcher(env)
    public, private = _seal_keys(env, state_dir)  # made only once the rest is valid
    return Settings(
        hook=hook,
        store=store,
        state_dir=state_dir,
        attempts=AttemptSettings(
            max_concurrent=int(_number(env, "FORGE_MAX_CONCURRENT", 4, 1, 256)),
            deadline_s=_number(env, "FORGE_DEADLINE_S", 3600, 10, 86400),
            idle_timeout_s=_number(env, "FORGE_IDLE_TIMEOUT_S", 900, 5, 86400),
            cancel_grace_s=_cancel_grace_s(env),
            replica_id=env.get("FORGE_REPLICA_ID") or socket.gethostname(),
        ),
        launcher=launcher,
        runner=RunnerSettings(
            env={k: env[k] for k in RUNNER_VARIABLES if env.get(k)},
            seal_public_key=public,
            seal_private_key=private,
        ),
        forgeboard={k: v for k, v in env.items() if k.startswith("FORGEBOARD_")},
    )


def _hook(env: Mapping[str, str], require_secret: bool) -> HookSettings:
    hook_secret = secret_setting(env, "FORGE_HOOK_SECRET")
    if not hook_secret:
        if require_secret:
            raise ConfigError(
                "FORGE_HOOK_SECRET (or FORGE_HOOK_SECRET_FILE) is not set: the HMAC key of the "
                "deploy hook"
            )
        hook_secret = secrets.token_urlsafe(32)
    if len(hook_secret) < 16:
        raise ConfigError("FORGE_HOOK_SECRET is malformed: use at least 16 characters")
    root_raw = env.get("FORGE_BUILDS_ROOT")
    if not root_raw:
        raise ConfigError("FORGE_BUILDS_ROOT is not set: the folder holding the build directories")
    builds_root = Path(root_raw).resolve()
    if not builds_root.is_dir():
        raise ConfigError(f"FORGE_BUILDS_ROOT is malformed: {root_raw} is not a directory")
    callback = env.get("FORGE_CALLBACK_URL") or None
    if callback is not None and not re.match(r"^https?://[^\s/]+", callback):
        raise ConfigError("FORGE_CALLBACK_URL is malformed: expected an http(s) URL")
    return HookSettings(hook_secret.encode(), builds_root, callback)


def _cancel_grace_s(env: Mapping[str, str]) -> float:
    return _number(env, "FORGE_CANCEL_GRACE_S", 20, 0, 600)


def _launcher(env: Mapping[str, str]) -> LauncherSettings:
    kind = env.get("FORGE_LAUNCHER") or "process"
    if kind not in LAUNCHERS:
        raise ConfigError(f"FORGE_LAUNCHER is malformed: one of {', '.join(LAUNCHERS)}")
    runner_image = env.get("FORGE_RUNNER_IMAGE") or "forge-runner:dev"
    kubernetes = None
    if kind == "kubernetes":
        try:
            kubernetes = kubernetes_settings_from_env(
                env, image=runner_image, grace_s=_cancel_grace_s(env)
            )
        except ValueError as e:
            raise ConfigError(str(e)) from e
    return LauncherSettings(
        kind=kind,
        runner_image=runner_image,
        docker_network=env.get("FORGE_DOCKER_NETWORK") or "bridge",
        kubernetes=kubernetes,
    )
