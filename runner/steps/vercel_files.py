"""What a Vercel deployment is sent: the build's files (`uploaded_files`), the ones Vercel lacks
uploaded in parallel (`upload`), and the `POST /v13/deployments` body (`deployment_body`)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from runner.context import RunContext
from runner.providers.vercel import VercelClient
from runner.workcopy import FileEntry, WorkCopy

NOT_UPLOADED = ("supabase/",)


def uploaded_files(copy: WorkCopy) -> list[FileEntry]:
    """What Vercel gets: the work copy without `supabase/` (migrations are the database's
    business; the repository keeps them)."""
    return [f for f in copy.files() if not f.path.startswith(NOT_UPLOADED)]


def framework(copy: WorkCopy, files: list[FileEntry]) -> str | None:
    """`nextjs` when package.json depends on `next`, else None (static / other)."""
    if not any(f.path == "package.json" for f in files):
        return None
    try:
        package = json.loads(copy.read("package.json"))
    except (ValueError, UnicodeDecodeError):
        return None
    deps: dict[str, Any] = {}
    for section in ("dependencies", "devDependencies"):
        if isinstance(package, dict) and isinstance(package.get(section), dict):
            deps.update(package[section])
    return "nextjs" if "next" in deps else None


def deployment_body(
    name: str,
    project_id: str,
    files: list[FileEntry],
    meta: dict[str, str],
    framework_name: str | None,
    staged: bool,
) -> dict[str, Any]:
    """The `POST /v13/deployments` body: files by sha, production target, no domains if staged."""
    body: dict[str, Any] = {
        "name": name,
        "project": project_id,
        "target": "production",
        "files": [{"file": f.path, "sha": f.sha1, "size": f.size} for f in files],
        "projectSettings": {"framework": framework_name},
        "meta": meta,
    }
    if staged:
        body["autoAssignCustomDomains"] = False  # = `vercel deploy --prod --skip-domain`
    return body


def upload(ctx: RunContext, vercel: VercelClient, copy: WorkCopy, files: dict[str, str]) -> int:
    """Upload `files` (sha → path), at most `FORGE_VERCEL_UPLOADS` at once. Uploads are
    content-addressed, so a retried or repeated one is harmless; the first failure (or a cancel)
    stops those not started and is raised."""

    def one(sha: str, path: str) -> None:
        ctx.check_cancelled()
        vercel.upload_file(sha, copy.read(path))

    workers = max(1, min(ctx.settings.run.vercel_uploads, len(files)))
    with ThreadPoolExecutor(workers, thread_name_prefix="vercel-upload") as pool:
        futures = [pool.submit(one, sha, path) for sha, path in files.items()]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return len(files)
