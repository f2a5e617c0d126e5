"""The compose stack's images as `make image` builds them: fixed non-root users, the documented
entrypoints, no trace of the build's CA secret in any layer, and a PostgreSQL entrypoint that
refuses bad settings (root, no password, a malformed database name) before creating anything."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clis import REPO

pytestmark = pytest.mark.docker

DISPATCHER = "forge-dispatcher:dev"
POSTGRES = "forge-postgres:dev"


def inspect(image: str) -> dict[str, object]:
    out = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, text=True, check=True
    ).stdout
    config: dict[str, object] = json.loads(out)[0]["Config"]
    return config


def test_images_run_as_fixed_non_root_users(stack_images: None) -> None:
    dispatcher, postgres = inspect(DISPATCHER), inspect(POSTGRES)
    assert dispatcher["User"] == "10001:10001"
    assert dispatcher["Entrypoint"] == ["forge-dispatcher", "serve"]
    assert dispatcher["Cmd"] == ["--host", "0.0.0.0", "--port", "8080"]
    assert postgres["User"] == "10002:10002"
    assert postgres["Entrypoint"] == ["forge-postgres"]
    for config in (dispatcher, postgres):
        labels = config["Labels"]
        assert isinstance(labels, dict)
        assert labels["org.opencontainers.image.version"] == "0.1.0"


def _layer_lines(image: str, tmp_path: Path) -> Iterator[bytes]:
    """Every line of every file of every layer of `image` (`docker save`)."""
    archive = tmp_path / "image.tar"
    subprocess.run(["docker", "save", "-o", str(archive), image], check=True)
    with tarfile.open(archive) as outer:
        for member in outer:
            if not member.isfile() or not member.name.endswith((".tar", "layer.tar")):
                continue
            layer = outer.extractfile(member)
            assert layer is not None
            with tarfile.open(fileobj=layer) as inner:
                for entry in inner:
                    if entry.isfile():
                        handle = inner.extractfile(entry)
                        assert handle is not None
                        yield from handle.read().splitlines()


@pytest.mark.parametrize(
    ("image", "copied"),
    [
        (DISPATCHER, "images/dispatcher/with-sandbox-env"),
        (POSTGRES, "images/postgres/entrypoint"),
    ],
)
def test_no_layer_holds_the_build_ca_secret(
    stack_images: None, image: str, copied: str, tmp_path: Path
) -> None:
    """The extra CA certificates reach the build as a BuildKit secret only (images/build-image).
    Their base64 lines are looked for in every layer; the longest line of a file the
    Dockerfile copies into the image shows that the scan reads the layers."""
    pattern = os.environ.get("FORGE_EXTRA_CA_CERTS", "/usr/local/share/ca-certificates/*.crt")
    needles = {
        line.strip()
        for path in glob.glob(pattern)
        for line in Path(path).read_bytes().splitlines()
        if len(line.strip()) >= 60 and b"-----" not in line
    }
    assert needles, f"no extra CA certificates in {pattern}: nothing the build was handed"
    control = max((REPO / copied).read_bytes().splitlines(), key=len).strip()
    found_control = False
    leaked = []
    for line in _layer_lines(image, tmp_path):
        stripped = line.strip()
        if stripped in needles:
            leaked.append(stripped[:20])
        found_control = found_control or stripped == control
    assert found_control, f"the scan did not see {copied} in {image}: it reads nothing"
    assert not leaked, f"{image} holds lines of the build's CA secret: {leaked[:3]}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "0", "-e", "POSTGRES_PASSWORD=x"], "refusing to run as root"),
        ([], "POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD) is not set"),
        (
            ["-e", "POSTGRES_PASSWORD=x", "-e", "POSTGRES_DATABASES=forge,a;drop"],
            "a;drop is not a plain lower-case name",
        ),
    ],
)
def test_postgres_refuses_bad_settings_before_initdb(
    stack_images: None, args: list[str], message: str
) -> None:
    result = subprocess.run(
        ["docker", "run", "--rm", *args, POSTGRES], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "forge-postgres: initdb in" not in result.stderr  # nothing was created
