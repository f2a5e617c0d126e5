"""`forge-dispatcher render-job`: the Secret and the Job of one deploy as YAML, for `kubectl`.

The output is what the Kubernetes launcher creates for that deploy (its `spec`), with three
differences that make it safe to print and to apply by hand:

- the Secret's token values are placeholders (`GH_TOKEN='<GH_TOKEN>'`): the operator fills
  them in; no token is ever printed;
- both carry `app.kubernetes.io/managed-by: kubectl` and no `forge.managed` label, so a
  dispatcher's reconcile never adopts or removes them;
- the Secret comes first and has no owner reference (the Job's uid is unknown before it
  exists): `kubectl create -f job.yaml` makes both, and
  `kubectl delete job,secret -l forge.deploy_id=<id>` removes both.

The bundle URL is the one given (e.g. a signed `/v1/bundles/...` URL of the dispatcher, or any
URL serving the build directory as a tar.gz), else a placeholder. `template()` renders the
example that k8s/runner-job.yaml holds (`python -m dispatcher.render > k8s/runner-job.yaml`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dispatcher.core.ports import RunSpec
from dispatcher.launchers.kubernetes.settings import JobSettings
from dispatcher.launchers.kubernetes.spec import job_manifest, secret_manifest
from runner.events import DeploymentId
from runner.providers.catalog import PROVIDERS

BUNDLE_PLACEHOLDER = "<URL of the build directory as a tar.gz>"


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the init container's script, secrets.env); no
    anchors (the Job's labels and its pods' are one dict)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render_job(
    spec: RunSpec,
    settings: JobSettings,
    *,
    bundle_url: str | None = None,
    files: Mapping[str, bytes] | None = None,
) -> str:
    """The Secret (token placeholders) and the Job of `spec`, as a two-document YAML stream.
    `files`: configuration files (path in the pod -> content) the Secret carries, as with
    the launcher's `read_only_files`."""
    placeholders = {key: f"<{key}>" for key in spec.secrets}
    shown = RunSpec(
        deployment_id=spec.deployment_id,
        attempt=spec.attempt,
        build_dir=spec.build_dir,
        args=spec.args,
        env=spec.env,
        secrets=placeholders,
        resume_events=spec.resume_events,
        deadline_s=spec.deadline_s,
    )
    secret = secret_manifest(
        shown, settings, bundle_url=bundle_url or BUNDLE_PLACEHOLDER, files=files, managed=False
    )
    job = job_manifest(shown, settings, file_paths=list(files or {}), managed=False)
    header = (
        f"# forge-deploy: deployment {spec.deployment_id}, attempt {spec.attempt}.\n"
        "# Fill in the Secret's placeholders, then: kubectl create -f <this file>\n"
        f"# Remove both: kubectl delete job,secret -n {settings.namespace}"
        f" -l forge.deploy_id={job['metadata']['labels']['forge.deploy_id']}\n"
    )
    documents: list[Any] = [secret, job]
    body = yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=100)
    return header + "---\n" + body


def template() -> str:
    """The example in k8s/runner-job.yaml: a first deploy of `my-app` in namespace forge."""
    spec = RunSpec(
        deployment_id=DeploymentId("example"),
        attempt=1,
        build_dir=Path("/builds/my-app"),
        args=("deploy", "--name", "my-app"),
        env={
            "GH_ORG": "my-github-org",
            "SUPABASE_ORG_ID": "my-supabase-org",
            "SUPABASE_REGION": "us-east-1",
            "VERCEL_ORG_ID": "my-vercel-team",
        },
        secrets={p.token: "" for p in PROVIDERS},
        deadline_s=3600,
    )
    settings = JobSettings(
        namespace="forge", image="forge-runner:dev", service_account="forge-runner"
    )
    return render_job(spec, settings)


if __name__ == "__main__":
    print(template(), end="")
