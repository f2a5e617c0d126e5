"""Secrets handed in as files (compose and Docker secrets): FORGE_HOOK_SECRET_FILE and
FORGE_DATABASE_PASSWORD(_FILE) for the dispatcher, --postgres-password-file for the sandbox.
A bad setting is refused naming it; the database password reaches a real PostgreSQL that asks
for it (the session's cluster: scram-sha-256 over TCP)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from dispatcher import settings
from dispatcher.core.errors import StoreError
from dispatcher.store.open import open_store
from sandbox.postgres import PostgresError, external_server


def base_env(tmp_path: Path) -> dict[str, str]:
    builds = tmp_path / "builds"
    builds.mkdir(exist_ok=True)
    return {"FORGE_BUILDS_ROOT": str(builds), "FORGE_STATE_DIR": str(tmp_path / "state")}


def file_with(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def without_password(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    assert parts.password, url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}")), parts.password


def test_the_hook_secret_is_read_from_its_file(tmp_path: Path) -> None:
    key = "k" * 32
    env = {**base_env(tmp_path), "FORGE_HOOK_SECRET_FILE": file_with(tmp_path, "h", f"{key}\n")}
    assert settings.load(env).hook.secret == key.encode()


def hook_env(tmp_path: Path, case: str) -> dict[str, str]:
    """The environment of one bad hook secret case."""
    path = tmp_path / "hook"
    if case == "binary":
        path.write_bytes(b"\xff\xfe\x00")
    else:
        path.write_text({"both": "k" * 32, "empty": "\n", "short": "abc\n"}.get(case, ""))
    env = {**base_env(tmp_path), "FORGE_HOOK_SECRET_FILE": str(path)}
    if case == "both":
        env["FORGE_HOOK_SECRET"] = "k" * 32
    if case == "missing":
        env["FORGE_HOOK_SECRET_FILE"] = "/nonexistent/hook"
    return env


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("both", "FORGE_HOOK_SECRET and FORGE_HOOK_SECRET_FILE are both set"),
        ("missing", "FORGE_HOOK_SECRET_FILE names an unreadable file: /nonexistent/hook"),
        ("empty", "FORGE_HOOK_SECRET_FILE names a file whose first line is empty"),
        ("binary", "FORGE_HOOK_SECRET_FILE names a file that is not UTF-8 text"),
        ("short", "FORGE_HOOK_SECRET is malformed: use at least 16 characters"),
    ],
)
def test_a_bad_hook_secret_file_is_refused_naming_it(tmp_path: Path, case: str, named: str) -> None:
    with pytest.raises(settings.ConfigError, match=named):
        settings.load(hook_env(tmp_path, case))


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("sqlite:///x.db", "FORGE_DATABASE_PASSWORD is set, but FORGE_DATABASE_URL is SQLite"),
        ("postgresql://u:p@h/db", "FORGE_DATABASE_URL carries a password too"),
    ],
)
def test_a_database_password_that_cannot_apply_is_refused(
    tmp_path: Path, url: str, named: str
) -> None:
    env = {
        **base_env(tmp_path),
        "FORGE_HOOK_SECRET": "k" * 32,
        "FORGE_DATABASE_URL": url,
        "FORGE_DATABASE_PASSWORD_FILE": file_with(tmp_path, "pw", "p4ssw0rd\n"),
    }
    with pytest.raises(settings.ConfigError, match=named):
        settings.load(env)


def test_the_store_connects_with_the_password_from_its_file(
    tmp_path: Path, postgres_url: str
) -> None:
    url, password = without_password(postgres_url)
    env = {**base_env(tmp_path), "FORGE_HOOK_SECRET": "k" * 32, "FORGE_DATABASE_URL": url}
    with pytest.raises(StoreError):  # the server asks for a password: without it, refused
        open_store(url, settings.load(env).store.password)
    loaded = settings.load(
        {**env, "FORGE_DATABASE_PASSWORD_FILE": file_with(tmp_path, "pw", password + "\n")}
    )
    assert loaded.store.url == url and password not in repr(loaded)
    store = open_store(loaded.store.url, loaded.store.password)
    try:
        store.migrate()
        assert store.get("no-such-deployment") is None
    finally:
        store.close()


def test_the_sandbox_connects_with_a_separate_password(postgres_url: str) -> None:
    url, password = without_password(postgres_url)
    with pytest.raises(PostgresError, match="cannot connect"):
        external_server(url)
    with external_server(url, password).admin() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(PostgresError, match="a password file is given too"):
        external_server(postgres_url, password)


def test_a_bad_sandbox_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(PostgresError) as refused:
        external_server("mysql://root:hunter2hunter2@db/x")
    assert "hunter2" not in str(refused.value)
