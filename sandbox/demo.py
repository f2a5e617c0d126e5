"""`forge-sandbox demo`: start the sandbox as a child process and show each provider answering."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import requests


def _checks(info: dict[str, Any]) -> list[tuple[str, str, requests.Response]]:
    ca = info["ca_file"]
    github = requests.get(
        f"{info['github']['api']}/user",
        headers={"Authorization": f"Bearer {info['github']['token']}"},
        verify=ca,
        timeout=30,
    )
    supabase = requests.get(
        f"{info['supabase']['api']}/v1/organizations",
        headers={"Authorization": f"Bearer {info['supabase']['token']}"},
        timeout=30,
    )
    vercel = requests.get(
        f"{info['vercel']['api']}/v2/user",
        headers={"Authorization": f"Bearer {info['vercel']['token']}"},
        timeout=30,
    )
    return [
        ("github", "GET /user", github),
        ("supabase", "GET /v1/organizations", supabase),
        ("vercel", "GET /v2/user", vercel),
    ]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(state_dir: Path, once: bool, extra_args: list[str]) -> None:
    argv = [sys.executable, "-m", "sandbox.cli", "serve", "--state-dir", str(state_dir)]
    process = subprocess.Popen([*argv, *extra_args], stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise click.ClickException(f"the sandbox exited with {process.wait()} before announcing")
    info = json.loads(line)
    ok = True
    try:
        for service, call, response in _checks(info):
            ok &= response.ok
            mark = "ok " if response.ok else "FAIL"
            click.echo(f"{mark} {service:9} {call:24} -> {response.status_code}", err=True)
        click.echo(f"sandbox ready, apps at {info['apps']}; use it with:", err=True)
        click.echo(f'  eval "$(forge-sandbox env --state-dir {state_dir})"', err=True)
        click.echo(json.dumps(info))
        if not ok:
            raise click.ClickException("a provider did not answer as expected")
        if not once:
            click.echo("serving until Ctrl-C", err=True)
            signal.signal(signal.SIGTERM, _interrupt)
            with contextlib.suppress(KeyboardInterrupt):
                process.wait()
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        process.wait()
