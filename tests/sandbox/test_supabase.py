"""The real `supabase` CLI (2.117.0) against the emulator: the commands a deploy runs.

Every CLI run is under the strace loopback audit (tests/support/loopback.py); `link` in
particular must not even ask the machine's DNS resolver about `<ref>.<project_host>`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.clis import CliRunner
from tests.support.sandbox import SandboxProcess
from tests.support.supabase_api import Management, project_entry, reset_budget

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _fresh_budget(sandbox: SandboxProcess) -> Iterator[None]:
    reset_budget(sandbox)
    yield


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The CLI writes `supabase/.temp/*` into its working directory: never the repo."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def supabase(
    cli: CliRunner,
    workdir: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return cli.run(["supabase", *cli.supabase_args, *args], cwd=workdir, check=check, env=env)


def test_profile_file_passes_the_clis_validation_and_names_the_api(
    sandbox: SandboxProcess,
) -> None:
    profile = Path(sandbox.info["supabase"]["profile_file"]).read_text()
    assert f"api_url: {sandbox.info['supabase']['api']}" in profile
    for key in ("name:", "dashboard_url:", "project_host:"):
        assert key in profile


def test_cli_creates_lists_reads_keys_links_and_deletes_a_project(
    sandbox: SandboxProcess, cli: CliRunner, unique: str, workdir: Path
) -> None:
    api = Management(sandbox)
    org = sandbox.info["supabase"]["org"]

    orgs = json.loads(supabase(cli, workdir, "orgs", "list", "-o", "json").stdout)
    assert [(o["id"], o["slug"]) for o in orgs] == [(org, org)] and orgs[0]["name"]

    name = f"cli-{unique}"
    created = supabase(
        cli,
        workdir,
        "projects",
        "create",
        name,
        "--org-id",
        org,
        "--db-password",
        "Cli-pass-1",
        "--region",
        "us-east-1",
        "-o",
        "json",
    )
    project = json.loads(created.stdout)
    ref = project["ref"]
    assert len(ref) == 20 and ref.isalpha() and ref.islower()
    assert project["name"] == name and project["organization_slug"] == org
    assert project["region"] == "us-east-1" and project["status"] in ("COMING_UP", "UNKNOWN")
    assert "database" not in project

    listed = json.loads(supabase(cli, workdir, "projects", "list", "-o", "json").stdout)
    mine = [p for p in listed if p["ref"] == ref]
    assert len(mine) == 1 and mine[0]["name"] == name
    assert set(mine[0]["database"]) == {"host", "version", "postgres_engine", "release_channel"}

    api.wait_status(ref)
    keys = json.loads(
        supabase(cli, workdir, "projects", "api-keys", "--project-ref", ref, "-o", "json").stdout
    )
    by_type = {(k["type"], k["name"]): k for k in keys}
    assert set(by_type) >= {
        ("legacy", "anon"),
        ("legacy", "service_role"),
        ("publishable", "default"),
        ("secret", "default"),
    }
    assert by_type[("legacy", "anon")]["api_key"].count(".") == 2  # a JWT
    assert "•" in by_type[("secret", "default")]["api_key"]  # masked without reveal

    link_dir = workdir / "linked"
    link_dir.mkdir()
    linked = supabase(cli, link_dir, "link", "--project-ref", ref)
    assert "Finished supabase link." in linked.stdout
    temp = link_dir / "supabase" / ".temp"
    assert (temp / "project-ref").read_text().strip() == ref
    pooler = api("GET", f"/v1/projects/{ref}/config/database/pooler").json()[0]
    assert (temp / "pooler-url").read_text().strip() == (
        f"postgresql://postgres.{ref}@{pooler['db_host']}:{pooler['db_port']}/{ref}?sslmode=disable"
    )
    assert (temp / "postgres-version").read_text().strip() == mine[0]["database"]["version"]
    # The tenant calls to https://<ref>.<project_host> fail before any traffic, silently.
    assert not (temp / "rest-version").exists()

    deleted = supabase(cli, workdir, "projects", "delete", ref, "--yes")
    assert f"Deleted project: {name}" in deleted.stdout
    assert api("GET", f"/v1/projects/{ref}").status_code == 404
    assert project_entry(sandbox, ref) is None
    assert sandbox.postgres_url is not None
    with psycopg.connect(sandbox.postgres_url) as conn:
        gone = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (ref,)).fetchone()
    assert gone is None


def test_db_push_applies_migrations_atomically_per_file(
    sandbox: SandboxProcess, cli: CliRunner, unique: str, workdir: Path
) -> None:
    api = Management(sandbox)
    password = "Push:pass/1@x"  # URL-special characters on purpose
    ref = api.create(f"push-{unique}", db_pass=password)
    api.wait_status(ref)
    db_url = api.db_url(ref, password)

    migrations = workdir / "supabase" / "migrations"
    migrations.mkdir(parents=True)
    (migrations / "20240101000000_init.sql").write_text(
        "create table items (id int primary key, label text);\n"
        "insert into items values (1, 'one');\n"
    )
    (migrations / "20240102000000_more.sql").write_text("alter table items add column n int;\n")

    first = supabase(cli, workdir, "db", "push", "--db-url", db_url, "--yes")
    assert "Finished supabase db push." in first.stdout
    second = supabase(cli, workdir, "db", "push", "--db-url", db_url, "--yes")
    assert "Remote database is up to date." in second.stdout

    (migrations / "20240103000000_bad.sql").write_text(
        "create table half_applied (id int);\nselect * from no_such_table_xyz;\n"
    )
    bad = supabase(cli, workdir, "db", "push", "--db-url", db_url, "--yes", check=False)
    assert bad.returncode == 1
    assert "no_such_table_xyz" in bad.stderr

    with psycopg.connect(db_url) as conn:  # the project's own credentials work
        versions = [
            r[0]
            for r in conn.execute(
                "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version"
            )
        ]
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'"
            )
        }
        half = conn.execute("SELECT to_regclass('public.half_applied')").fetchone()
    assert versions == ["20240101000000", "20240102000000"]
    assert columns == {"id", "label", "n"}
    assert half == (None,)

    entry = project_entry(sandbox, ref)
    assert entry is not None and entry["db_pass"] == password
    assert entry["migrations"] == [
        {"version": "20240101000000", "name": "init"},
        {"version": "20240102000000", "name": "more"},
    ]
    listed = api("GET", f"/v1/projects/{ref}/database/migrations").json()
    assert [m["version"] for m in listed] == versions
    assert api("DELETE", f"/v1/projects/{ref}").status_code == 200


def test_cli_reports_a_bad_token_and_unknown_projects(
    sandbox: SandboxProcess, cli: CliRunner, workdir: Path
) -> None:
    wrong = {"SUPABASE_ACCESS_TOKEN": "sbp_" + "0" * 40}
    refused = supabase(cli, workdir, "orgs", "list", "-o", "json", check=False, env=wrong)
    assert refused.returncode == 1 and "401" in refused.stderr

    missing = "abcdefghijabcdefghij"
    keys = supabase(
        cli, workdir, "projects", "api-keys", "--project-ref", missing, "-o", "json", check=False
    )
    assert keys.returncode == 1 and "404" in keys.stderr
    gone = supabase(cli, workdir, "projects", "delete", missing, "--yes", check=False)
    assert gone.returncode == 1 and f"Project does not exist:{missing}" in gone.stderr
