"""Configuration errors name the variable and happen before any request."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from runner import settings
from runner.errors import BadInput

GOOD = {
    "GH_TOKEN": "ghp_" + "a" * 36,
    "GH_ORG": "acme",
    "SUPABASE_ACCESS_TOKEN": "sbp_" + "b" * 40,
    "SUPABASE_ORG_ID": "acme-org",
    "VERCEL_TOKEN": "c" * 24,
    "VERCEL_ORG_ID": "team_abc123",
}


def test_defaults_point_at_the_real_providers() -> None:
    loaded = settings.load(GOOD)
    assert loaded.github.api_url == "https://api.github.com"
    assert loaded.supabase.project_url == "https://{ref}.supabase.co"
    assert loaded.vercel.api_url == "https://api.vercel.com"
    assert loaded.run.deploy_id.startswith("local-")
    assert set(loaded.secrets()) == {
        GOOD["GH_TOKEN"],
        GOOD["SUPABASE_ACCESS_TOKEN"],
        GOOD["VERCEL_TOKEN"],
    }


@pytest.mark.parametrize("missing", sorted(GOOD))
def test_each_missing_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(BadInput, match=f"^{missing} is not set"):
        settings.load(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GH_TOKEN", "has space inside"),
        ("GH_ORG", "-bad-"),
        ("SUPABASE_REGION", "moon"),
        ("FORGE_GITHUB_API_URL", "ftp://x"),
        ("FORGE_SUPABASE_PROJECT_URL", "https://no-placeholder.example"),
        ("FORGE_HTTP_TIMEOUT_S", "soon"),
        ("FORGE_HEALTH_REDEPLOYS", "99"),
        ("FORGE_SEAL_PUBLIC_KEY", base64.b64encode(b"short").decode()),
        ("FORGE_DEPLOY_ID", "a b"),
        ("FORGE_HEALTH_PATH", "nope"),
    ],
)
def test_malformed_values_are_named(name: str, value: str) -> None:
    with pytest.raises(BadInput, match=f"^{name} is (malformed|out of range)"):
        settings.load({**GOOD, name: value})


def test_env_file_supplies_tokens_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "secrets.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in GOOD.items()))
    loaded = settings.load({"FORGE_ENV_FILE": str(env_file), "GH_ORG": "other"})
    assert loaded.github.token == GOOD["GH_TOKEN"] and loaded.github.org == "other"
    with pytest.raises(BadInput, match="FORGE_ENV_FILE names"):
        settings.load({"FORGE_ENV_FILE": str(tmp_path / "missing.env")})
