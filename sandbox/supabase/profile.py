"""The `--profile` file that points the real `supabase` CLI (2.117.0) at the sandbox.

The CLI validates it: `name`, `api_url` (http URL), `dashboard_url` (http URL) and `project_host`
(an RFC 1123 hostname) are required. `project_host` only serves `supabase link`'s three tenant
calls to `https://<ref>.<project_host>`, whose failures the CLI ignores. The sandbox cannot serve
them (port 443, wildcard DNS), and a resolvable-looking name would send a DNS query to the
machine's resolver. So the host is chosen to fail *before any network traffic*, in both of the
CLI's HTTP stacks, while passing its validation:
- the last label is a number, so the WHATWG URL parser (the Bun side, which makes these calls in
  2.117.0) reads the host as an IPv4 address, rejects it, and the fetch fails without a lookup;
- a label ends in `-`, which Go's resolver (the `supabase-go` side) rejects as "no such host"
  without a query.
Verified with `strace -f -e trace=connect,sendto,sendmsg`: `link` connects only to 127.0.0.1.
The tenant endpoints themselves live on the apps server (`Urls.supabase_project`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sandbox.context import Context

PROFILE_NAME = "forge-sandbox"
PROJECT_HOST = "sandbox-.0"


def write_profile(ctx: Context, path: Path) -> None:
    document = {
        "name": PROFILE_NAME,
        "api_url": ctx.urls.supabase_api,
        "dashboard_url": f"{ctx.urls.apps}/sb-dashboard",
        "project_host": PROJECT_HOST,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    tmp.replace(path)
