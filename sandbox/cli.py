"""forge-sandbox: local GitHub, Supabase and Vercel for the embedded default and the tests."""

from __future__ import annotations

import json
import logging
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from sandbox.context import Identity, Urls
from sandbox.faults import FaultBook, FaultRuleError
from sandbox.postgres import PostgresError

DEFAULT_STATE_DIR = Path(".forge-sandbox")

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Where the sandbox keeps its state (survives restarts).",
)


@click.group()
def main() -> None:
    """Local emulators of GitHub, Supabase and Vercel."""


@main.command()
@state_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--faults",
    "faults_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON list of fault rules.",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help="Multiplier on every provider delay (1 = realistic: Supabase ~90 s, Vercel ~120 s).",
)
@click.option(
    "--postgres-url",
    envvar="FORGE_SANDBOX_POSTGRES_URL",
    help="Use this PostgreSQL server instead of starting one (it may carry a password: prefer"
    " the environment variable FORGE_SANDBOX_POSTGRES_URL, which no process listing shows).",
)
@click.option(
    "--postgres-password-file",
    envvar="FORGE_SANDBOX_POSTGRES_PASSWORD_FILE",
    type=click.Path(dir_okay=False, exists=True, readable=True, path_type=Path),
    help="The --postgres-url user's password: the first line of this file (a compose or Docker"
    " secret), so the URL carries none and no `docker inspect` shows it.",
)
@click.option("--record", is_flag=True, help="Log every request and answer to traffic.jsonl.")
@click.option(
    "--supabase-defaults",
    type=click.Choice(["2026", "2025"]),
    default="2026",
    show_default=True,
    help="What new Supabase projects behave like: 2026 is Supabase today (legacy JWT keys"
    " disabled, new public tables not granted to the API roles, the schema root closed to public"
    " keys); 2025 is the older behaviour (legacy keys on, tables granted automatically, the"
    " schema root open). Per project: PUT /_admin/supabase/projects/REF/defaults.",
)
@click.option(
    "--vercel-defaults",
    type=click.Choice(["2026", "2025"]),
    default="2026",
    show_default=True,
    help="What new Vercel projects behave like: 2026 is Vercel today (nodeVersion 24.x, builds"
    " on Node 20 or older refused, previews behind Vercel login); 2025 is the older behaviour"
    " (nodeVersion 20.x, builds on 18.x-22.x, no protection). Per project: PUT"
    " /_admin/vercel/projects/ID/defaults.",
)
def serve(
    state_dir: Path,
    host: str,
    faults_file: Path | None,
    time_scale: float,
    postgres_url: str | None,
    postgres_password_file: Path | None,
    record: bool,
    supabase_defaults: str,
    vercel_defaults: str,
) -> None:
    """Start all emulators; print one JSON line once they accept connections."""
    from sandbox.server import serve as run

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    faults: list[Any] = []
    if faults_file:
        try:
            faults = json.loads(faults_file.read_text())
            FaultBook.parse(faults)
        except (ValueError, FaultRuleError) as e:
            raise click.BadParameter(str(e), param_hint="--faults") from e
    password = ""
    if postgres_password_file:
        if not postgres_url:
            raise click.BadParameter("needs --postgres-url", param_hint="--postgres-password-file")
        try:
            lines = postgres_password_file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise click.BadParameter(
                f"{postgres_password_file} is not UTF-8 text", param_hint="--postgres-password-file"
            ) from None
        password = lines[0].strip() if lines else ""
        if not password:
            raise click.BadParameter(
                f"{postgres_password_file}: the first line is empty",
                param_hint="--postgres-password-file",
            )
    try:
        run(
            state_dir.resolve(),
            host,
            faults,
            time_scale,
            postgres_url,
            record,
            password,
            supabase_defaults,
            vercel_defaults,
        )
    except PostgresError as e:
        raise click.ClickException(str(e)) from e


def _identity(state_dir: Path) -> Identity:
    path = state_dir / "sandbox.json"
    if not path.exists():
        raise click.ClickException(f"no sandbox state in {state_dir} (run forge-sandbox serve)")
    return Identity.load_or_create(path)


@main.command()
@state_dir_option
def env(state_dir: Path) -> None:
    """Print KEY=VALUE lines that point forge-deploy at this sandbox."""
    state_dir = state_dir.resolve()
    ident = _identity(state_dir)
    urls = Urls("127.0.0.1", ident.ports)
    ca = str(state_dir / "tls" / "ca.pem")
    values = {
        "GH_TOKEN": ident.github_token,
        "GH_ORG": ident.github_org,
        "GH_HOST": urls.github_host,
        "GH_ENTERPRISE_TOKEN": ident.github_token,
        "FORGE_GITHUB_API_URL": urls.github_api,
        "FORGE_GITHUB_GIT_URL": urls.github_git,
        "SUPABASE_ACCESS_TOKEN": ident.supabase_token,
        "SUPABASE_ORG_ID": ident.supabase_org_slug,
        "SUPABASE_REGION": "us-east-1",
        "FORGE_SUPABASE_API_URL": urls.supabase_api,
        "FORGE_SUPABASE_PROJECT_URL": urls.supabase_project("{ref}"),
        "SUPABASE_PROFILE": str(state_dir / "supabase" / "profile.yaml"),
        "VERCEL_TOKEN": ident.vercel_token,
        "VERCEL_ORG_ID": ident.vercel_team_id,
        "FORGE_VERCEL_API_URL": urls.vercel_api,
        "FORGE_CA_FILE": ca,
    }
    for key, value in values.items():
        click.echo(f"{key}={value}")


@main.command()
@state_dir_option
def resources(state_dir: Path) -> None:
    """Print one JSON document: everything that exists in the running sandbox."""
    state_dir = state_dir.resolve()
    ident = _identity(state_dir)
    urls = Urls("127.0.0.1", ident.ports)
    context = ssl.create_default_context(cafile=str(state_dir / "tls" / "ca.pem"))
    request = urllib.request.Request(  # noqa: S310 - loopback URL built from our own state
        f"{urls.apps}/_admin/resources",
        headers={"Authorization": f"Bearer {ident.admin_token}"},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
            document = json.loads(response.read())
    except (urllib.error.URLError, OSError) as e:
        raise click.ClickException(f"the sandbox in {state_dir} does not answer: {e}") from e
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@main.command(context_settings={"ignore_unknown_options": True})
@state_dir_option
@click.option("--once", is_flag=True, help="Stop after showing the providers answer.")
@click.argument("serve_args", nargs=-1, type=click.UNPROCESSED)
def demo(state_dir: Path, once: bool, serve_args: tuple[str, ...]) -> None:
    """Start the sandbox, show GitHub, Supabase and Vercel answering, keep serving."""
    from sandbox.demo import run_demo

    run_demo(state_dir.resolve(), once, list(serve_args))


if __name__ == "__main__":
    main()
