"""forge-dispatcher: the service and its CLI.

    forge-dispatcher serve [--host 127.0.0.1] [--port 8080]
    forge-dispatcher deploy DIR [--name N] [--sandbox] [--backend process|docker] [--json]
    forge-dispatcher status ID | logs [-f] ID | cancel ID | retry ID | teardown ID
    forge-dispatcher link ID | --project ID | --all   a short-lived signed link to the pages
    forge-dispatcher timeline ID --png FILE   the page's timeline picture as a PNG

`serve` reads its settings from the environment (README "The dispatcher"). The client commands
talk to FORGE_DISPATCHER_URL (default http://127.0.0.1:8080) signing with FORGE_HOOK_SECRET (or
the first line of the file FORGE_HOOK_SECRET_FILE names).
`deploy --sandbox` needs neither: it starts an embedded sandbox and dispatcher, deploys, follows
and stops them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from dispatcher import embedded
from dispatcher.client import ApiError, Client
from dispatcher.progress import Progress
from dispatcher.settings import ConfigError, secret_setting
from runner import events as runner_events
from runner.providers.catalog import PROVIDERS

EXIT = {"live": 0, "failed": 1, "unhealthy": 3, "cancelled": 4}


def _hook_secret() -> bytes:
    try:
        secret = secret_setting(os.environ, "FORGE_HOOK_SECRET")
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    if not secret:
        raise click.UsageError(
            "FORGE_HOOK_SECRET (or FORGE_HOOK_SECRET_FILE) is not set: the dispatcher's hook key"
        )
    return secret.encode()


def _client() -> Client:
    url = os.environ.get("FORGE_DISPATCHER_URL", "http://127.0.0.1:8080")
    return Client(url, _hook_secret())


def follow(client: Client, deployment_id: str, as_json: bool) -> dict[str, Any]:
    mode = "json" if as_json else ("tty" if sys.stdout.isatty() else "plain")
    view = Progress(sys.stdout, mode)
    for event in client.events(deployment_id, follow=True):
        view.event(event)
    final = client.get(deployment_id)
    if not as_json:
        click.echo(f"deployment {final['id']}: {final['status']}")
        for key, url in (final.get("urls") or {}).items():
            if url:
                click.echo(f"  {key:9} {url}")
        if final.get("error"):
            click.echo(f"  error     {final['error']}")
        if view.reproduce:
            click.echo(f"  reproduce {view.reproduce}")
    return final


@click.group()
def main() -> None:
    """Queue deploys of finished builds, run each in its own runner, keep every event."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the HTTP hook and the workers until SIGTERM."""
    try:
        embedded.serve(host, port)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="App name (default: the directory's name).")
@click.option("--sandbox", is_flag=True, help="Deploy into an embedded sandbox.")
@click.option("--backend", type=click.Choice(["process", "docker"]), default="process")
@click.option("--json", "as_json", is_flag=True, help="Print the raw events.")
def deploy(directory: Path, name: str | None, sandbox: bool, backend: str, as_json: bool) -> None:
    """Submit DIR and follow it to its end; prints the URLs."""
    app = name or directory.resolve().name
    try:
        if sandbox:
            with embedded.sandboxed(directory.resolve().parent, backend) as client:
                created = client.submit(app, app, directory.resolve().name)
                final = follow(client, created["id"], as_json)
        else:
            client = _client()
            created = client.submit(app, app, str(directory))
            final = follow(client, created["id"], as_json)
    except (ApiError, ConfigError, embedded.EmbeddedError) as e:
        raise click.ClickException(str(e)) from e
    sys.exit(EXIT.get(final["status"], 1))


@main.command()
@click.argument("deployment_id")
def status(deployment_id: str) -> None:
    """One deployment as JSON."""
    import json

    click.echo(json.dumps(_call(lambda c: c.get(deployment_id)), indent=2))


@main.command()
@click.argument("deployment_id")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep following until the end.")
def logs(deployment_id: str, follow_: bool) -> None:
    """The deployment's events as JSON lines."""
    import json

    client = _client()
    try:
        for event in client.events(deployment_id, follow=follow_):
            click.echo(json.dumps(event))
    except ApiError as e:
        raise click.ClickException(str(e)) from e


@main.command()
@click.argument("deployment_id", required=False)
@click.option("--project", "project_id", default=None, help="Open the deployments of a project.")
@click.option("--all", "everything", is_flag=True, help="Open every deployment (an operator's).")
@click.option(
    "--valid",
    default=300,
    show_default=True,
    type=click.IntRange(10, 3600),
    help="Seconds the link may be opened in (once).",
)
def link(deployment_id: str | None, project_id: str | None, everything: bool, valid: int) -> None:
    """Print a link that signs a browser in to the pages: to DEPLOYMENT_ID's page (that
    deployment only), to --project ID's deployments, or, with --all, to every deployment."""
    import time

    from dispatcher.ui import links
    from dispatcher.ui.scopes import Scope

    given = [x for x in (deployment_id, project_id, everything or None) if x is not None]
    if len(given) != 1:
        raise click.UsageError(
            "say what the link opens, one of: a deployment id, --project ID, or --all "
            "(every deployment: an operator's link)"
        )
    try:
        if deployment_id is not None:
            scope = Scope.deployment(runner_events.deployment_id(deployment_id))
        elif project_id is not None:
            scope = Scope.project(project_id)
        else:
            scope = Scope.everything()
    except ValueError as e:
        hint = "DEPLOYMENT_ID" if deployment_id is not None else "--project"
        raise click.BadParameter(str(e), param_hint=hint) from None
    url = os.environ.get("FORGE_DISPATCHER_URL", "http://127.0.0.1:8080")
    click.echo(links.mint(_hook_secret(), url, scope, time.time(), valid_s=valid))


@main.command()
@click.argument("deployment_id")
@click.option("--png", "png", required=True, type=click.Path(dir_okay=False, path_type=Path))
def timeline(deployment_id: str, png: Path) -> None:
    """Draw DEPLOYMENT_ID's timeline (the page's picture) into a PNG file."""
    import time

    from dispatcher.ui import timeline_png
    from dispatcher.ui.timeline import from_public

    dep = _call(lambda c: c.get(deployment_id))
    events = _call(lambda c: list(c.events(deployment_id, follow=False)))
    tl = from_public(events, dep, time.time())
    if tl.start is None:
        raise click.ClickException(f"deployment {deployment_id} has no step yet")
    title = f"{dep['project_name']} {dep['action']} {deployment_id}: {dep['status']}"
    timeline_png.render(tl, png, title)
    click.echo(f"wrote {png}")


@main.command(name="render-job")
@click.option("--name", required=True, help="App name.")
@click.option("--deploy-id", required=True, help="The deploy's id (labels and names).")
@click.option("--attempt", default=1, show_default=True, type=int)
@click.option("--build-dir", default="/builds/app", show_default=True, help="Inside the bundle.")
@click.option("--bundle-url", default=None, help="Where the init container fetches the build.")
def render_job(
    name: str, deploy_id: str, attempt: int, build_dir: str, bundle_url: str | None
) -> None:
    """Print the Job and its Secret template for one deploy (tokens as placeholders), for
    users who launch the runner by hand with kubectl. Settings: FORGE_K8S_* (k8s/README.md)."""
    from dispatcher import render
    from dispatcher.core.ports import RunSpec
    from dispatcher.launchers.kubernetes.settings import job_settings_from_env

    try:
        settings = job_settings_from_env(
            {"FORGE_K8S_NAMESPACE": "forge", **os.environ},
            os.environ.get("FORGE_RUNNER_IMAGE", "forge-runner:dev"),
            20,
        )
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    try:
        deployment_id = runner_events.deployment_id(deploy_id)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--deploy-id") from None
    spec = RunSpec(
        deployment_id=deployment_id,
        attempt=attempt,
        build_dir=Path(build_dir),
        args=("deploy", "--name", name),
        env={"FORGE_DEPLOY_ID": deployment_id},
        secrets={p.token: f"<{p.token}>" for p in PROVIDERS},
    )
    click.echo(render.render_job(spec, settings, bundle_url=bundle_url), nl=False)


def _call(fn: Any) -> Any:
    try:
        return fn(_client())
    except ApiError as e:
        raise click.ClickException(str(e)) from e


def _action(name: str) -> None:
    @main.command(name=name, help=f"POST /v1/deployments/ID/{name}.")
    @click.argument("deployment_id")
    def command(deployment_id: str) -> None:
        import json

        click.echo(json.dumps(_call(lambda c: c.action(deployment_id, name)), indent=2))


for _name in ("cancel", "retry", "teardown"):
    _action(_name)


if __name__ == "__main__":
    main()
