"""The PostgreSQL server behind the emulated Supabase projects.

By default the sandbox runs its own cluster in `<state-dir>/postgres` with Debian's binaries;
`--postgres-url` points it at an existing server instead. Each Supabase project is a real
database there, owned by a login role whose password is the project's `db_pass`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql


class PostgresError(RuntimeError):
    """The cluster could not be prepared or started; the message says what to do."""


def _binaries_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if found:
        return found[0].parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresError(
        "no PostgreSQL server binaries found (install Debian's 'postgresql' package) "
        "or pass --postgres-url"
    )


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class PostgresServer:
    """Where the server listens and how the sandbox administers it."""

    host: str
    port: int
    admin_conninfo: str

    @contextlib.contextmanager
    def admin(self, dbname: str | None = None) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        conninfo = self.admin_conninfo
        if dbname:
            conninfo = psycopg.conninfo.make_conninfo(conninfo, dbname=dbname)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            yield conn

    def create_database(self, role: str, password: str, dbname: str) -> None:
        """Create `role` (LOGIN, this password) and `dbname` owned by it; adopt existing ones."""
        with self.admin() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            has_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if not has_db.fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(dbname), sql.Identifier(role)
                    )
                )

    def drop_database(self, role: str, dbname: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _pg_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root (initdb refuses root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as e:
        raise PostgresError(
            "running as root needs the 'postgres' user (Debian's postgresql)"
        ) from e
    return entry.pw_uid, entry.pw_gid


def _check_reachable(path: Path, uid: int) -> None:
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if parent.stat().st_uid != uid and not mode & 0o001:
            raise PostgresError(
                f"the 'postgres' user cannot reach {path}: {parent} is not searchable by others "
                "(chmod o+x it, choose another --state-dir, or pass --postgres-url)"
            )


class ManagedCluster:
    """A cluster in a directory of ours: initdb once, start, stop (fast shutdown)."""

    def __init__(self, root: Path, host: str, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.run_dir = root / "run"
        self.host = host
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _run_as() -> tuple[int | None, int | None]:
        ids = _pg_user()
        return (ids[0], ids[1]) if ids else (None, None)

    def _prepare(self) -> None:
        ids = _pg_user()
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        if ids:
            _check_reachable(self.root, ids[0])
            for path in (self.root, self.run_dir):
                os.chown(path, *ids)
        if (self.data / "PG_VERSION").exists():
            return
        bindir = _binaries_dir()
        result = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            capture_output=True,
            check=False,
            cwd=self.root,
            user=self._run_as()[0],
            group=self._run_as()[1],
        )
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise PostgresError(f"initdb failed: {result.stderr.decode(errors='replace')[-800:]}")

    def _stop_stale(self) -> None:
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)
        except (ValueError, IndexError, ProcessLookupError):
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise PostgresError(f"a stale postgres (pid {pid}) on {self.data} did not stop")

    def start(self) -> PostgresServer:
        self._prepare()
        self._stop_stale()
        log = (self.root / "postgres.log").open("ab")
        self._process = subprocess.Popen(
            [
                str(_binaries_dir() / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.run_dir),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
                "-c",
                "wal_level=logical",  # Supabase Realtime's change feed (supabase/realtime_feed)
            ],
            stdout=log,
            stderr=log,
            cwd=self.root,
            user=self._run_as()[0],
            group=self._run_as()[1],
        )
        server = PostgresServer(
            host=self.host,
            port=self.port,
            admin_conninfo=f"host={self.run_dir} port={self.port} user=postgres dbname=postgres",
        )
        deadline = time.monotonic() + 60
        while True:
            if self._process.poll() is not None:
                tail = (self.root / "postgres.log").read_text(errors="replace")[-800:]
                raise PostgresError(f"postgres exited with {self._process.returncode}: {tail}")
            try:
                with server.admin():
                    return server
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostgresError("postgres did not accept connections within 60 s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def external_server(url: str, password: str = "") -> PostgresServer:
    """Use an existing server; the URL's user must be allowed to create roles and databases.
    `password`, when given, is that user's (the URL then carries none)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        shown = f"{parts.scheme}://..." if parts.scheme else "no URL"  # it may hold a password
        raise PostgresError(f"--postgres-url must be postgresql://user@host:port/db, got {shown}")
    if password and parts.password is not None:
        raise PostgresError("--postgres-url carries a password and a password file is given too")
    admin = psycopg.conninfo.make_conninfo(url, password=password) if password else url
    server = PostgresServer(host=parts.hostname, port=parts.port or 5432, admin_conninfo=admin)
    try:
        with server.admin():
            return server
    except psycopg.OperationalError as e:
        raise PostgresError(f"cannot connect to --postgres-url: {e}") from e
