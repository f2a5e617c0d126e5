"""The secret scan: deploy through real dispatchers (process launcher + SQLite store, Docker
launcher + PostgreSQL store) and look for every token, password and key in every output —
events and answers of the API, every row of every store table, every file of the state dirs, the
dispatcher's log, `ps` listings sampled during the deploy, `docker inspect` of the runner
container while it runs, the runner image's layers (`docker save`), and the Kubernetes Job the
launcher would send for each attempt the dispatcher really launched. One case per output.

Each output is searched for every secret the sandbox knows (plain, JSON, URL and base64 forms)
and for the shapes of Supabase's secrets (`tests/support/secret_shapes`: a `sb_secret_...` key,
an access token, a service-role JWT), which catches a key the scan never knew: the project of a
torn-down app is gone from the inventory before the scan reads it."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import psycopg

from bench.reliability.dispatchers import Deployer, running_dispatcher
from bench.reliability.table import Verdict
from bench.reliability.world import World
from dispatcher.core.ports import RunSpec
from dispatcher.launchers.docker.files import SECRETS_ROOT
from dispatcher.launchers.kubernetes import spec as k8s_specs
from dispatcher.launchers.kubernetes.settings import job_settings_from_env
from tests.dispatcher.conftest import dump_postgres, dump_sqlite
from tests.support import secret_shapes

IMAGE = "forge-runner:dev"


def forms(secret: str) -> set[str]:
    """Plain, JSON-escaped, URL-encoded and base64 forms of a secret."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        urllib.parse.quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
    }


@dataclass
class Outputs:
    texts: dict[str, str] = field(default_factory=dict)  # where -> what it showed
    hook_secrets: list[str] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        self.texts[where] = self.texts.get(where, "") + text


class _Sampler:
    """Samples something in a thread while a deploy runs."""

    def __init__(self, sample: Any, every_s: float = 0.05) -> None:
        self.sample, self.every_s = sample, every_s
        self.stop = threading.Event()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                self.seen.append(self.sample())
            self.stop.wait(self.every_s)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self.thread.start()
        try:
            yield
        finally:
            self.stop.set()
            self.thread.join(timeout=10)


def process_listing() -> str:
    """Every process's argv (what `ps -ef` shows)."""
    rows = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                rows.append(argv.decode(errors="replace"))
    return "\n".join(rows)


def inspect_runners(client: docker.DockerClient, deployment_ids: list[str]) -> str:
    found = []
    for dep in deployment_ids:
        for c in client.containers.list(all=True, filters={"label": f"forge.deploy_id={dep}"}):
            found.append(json.dumps(c.attrs))
    return "\n".join(found)


def _collect(w: World, launcher: str, store: str, out: Outputs) -> None:
    database: str | None = None
    if store == "postgresql":
        database = f"scan_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(w.postgres_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
    tag = f"{launcher}+{store}"
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    try:
        with running_dispatcher(w, launcher, database) as deployer:
            out.hook_secrets.append(deployer.api.secret.decode())
            _deploy_and_watch(w, deployer, tag, out)
            if store == "sqlite":
                for table, rows in dump_sqlite(deployer.state / "dispatcher.db").items():
                    out.add(f"{tag}: store table {table}", "\n".join(rows))
            else:
                assert database is not None
                url = w.postgres_url.rsplit("/", 1)[0] + "/" + database
                for table, rows in dump_postgres(url).items():
                    out.add(f"{tag}: store table {table}", "\n".join(rows))
            for spec in deployer.specs:
                job, secret = k8s_manifests(spec)
                out.add(f"{tag}: k8s Job of {spec.name}", json.dumps(job))
                out.add(
                    f"{tag}: k8s Secret of {spec.name} (its env file left out)", json.dumps(secret)
                )
        for spec in deployer.specs:  # the Docker launcher's token files on the host's tmpfs
            for path in SECRETS_ROOT.glob(f"{spec.name}*/**/*"):
                if path.is_file():
                    out.add(f"{tag}: host file {path}", _read(path))
        for path in sorted(deployer.state.rglob("*")):
            if path.is_file() and not path.name.startswith("dispatcher.db"):
                out.add(f"{tag}: state file {path.relative_to(deployer.state)}", _read(path))
    finally:
        logging.getLogger().removeHandler(handler)
        out.add(f"{tag}: dispatcher log", log.getvalue())
        if database is not None:
            with psycopg.connect(w.postgres_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _deploy_and_watch(w: World, deployer: Deployer, tag: str, out: Outputs) -> None:
    client = docker.from_env()
    ids: list[str] = []
    ps = _Sampler(process_listing)
    inspect = _Sampler(lambda: inspect_runners(client, list(ids)), every_s=0.2)
    with ps.running(), inspect.running():
        for action in ("deploy", "redeploy", "teardown"):
            dep = deployer.run(action, ids)
            out.add(f"{tag}: API answers", json.dumps(dep))
            out.add(f"{tag}: events of {action}", deployer.events(dep["id"]))
            if dep["status"] not in ("live",) and action != "teardown":
                raise RuntimeError(f"the {tag} {action} ended {dep['status']}: {dep}")
    out.add(f"{tag}: process listings ({len(ps.seen)} samples)", "\n".join(ps.seen))
    if tag.startswith("docker"):
        out.add(f"{tag}: docker inspect ({len(inspect.seen)} samples)", "\n".join(inspect.seen))


def k8s_manifests(spec: RunSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Job the Kubernetes launcher sends for this attempt, and its Secret without the one
    entry that must hold the tokens (`secrets.env`, mounted as a file)."""
    settings = job_settings_from_env({"FORGE_K8S_NAMESPACE": "forge"}, IMAGE, 20)
    bundle = "http://127.0.0.1/v1/bundles/token"
    secret = k8s_specs.secret_manifest(spec, settings, bundle_url=bundle)
    for part in ("data", "stringData"):
        secret.get(part, {}).pop(k8s_specs.KEY_ENV, None)
    return k8s_specs.job_manifest(spec, settings), secret


def image_layers(secrets: list[str]) -> list[str]:
    """The secrets found in `docker save IMAGE` (streamed, chunk by chunk with overlap)."""
    wanted = {form.encode(): secret for secret in secrets for form in forms(secret)}
    longest = max(len(f) for f in wanted)
    hits: set[str] = set()
    with subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        tail = b""
        while chunk := proc.stdout.read(1 << 22):
            window = tail + chunk
            hits.update(s for f, s in wanted.items() if f in window)
            tail = window[-longest:]
    if proc.returncode != 0:
        raise RuntimeError(f"docker save {IMAGE} failed ({proc.returncode})")
    return sorted(hits)


def verdicts(w: World) -> list[Verdict]:
    out = Outputs()
    _collect(w, "process", "sqlite", out)
    _collect(w, "docker", "postgresql", out)
    secrets = [*w.secrets(), *out.hook_secrets]
    found = []
    for where, text in out.texts.items():
        verdict = Verdict(where)
        if where.endswith("secrets.env"):
            verdict.leaked.append("a secrets file outlived its attempt")
        for secret in secrets:
            if any(form in text for form in forms(secret)):
                verdict.leaked.append(f"secret {secret[:4]}...({len(secret)} chars)")
        verdict.leaked += secret_shapes.found(text)
        found.append(verdict)
    t = time.monotonic()
    layers = Verdict(f"image layers (docker save {IMAGE})")
    layers.leaked += [f"secret {s[:4]}...({len(s)} chars)" for s in image_layers(secrets)]
    layers.seconds = round(time.monotonic() - t, 1)
    found.append(layers)
    return found
