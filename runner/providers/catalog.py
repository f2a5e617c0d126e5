"""The three providers as data, and the one list of the variables the runner reads.

Each `Provider` names its token's variable (a secret), the variable of the account deployed
into, and the others the runner reads for it (API URLs, region, the CLI's profile). The names
are the ones users already know (`GH_TOKEN`, `SUPABASE_ACCESS_TOKEN`, `VERCEL_TOKEN`, ...) and
are written here only: `runner.settings` reads them, the runner's masker registers the secret
ones, and the dispatcher derives from them what it hands each deploy (its secrets in a file,
the rest in the environment), the placeholders of `render-job` and the lanes of its pages.
The sandbox keeps lists of its own: it must not import the runner it judges.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    """One provider; built positionally below (name, title, token, account)."""

    name: str  # the runner's steps are "<name>.<sub-step>"
    title: str  # as a person writes it
    token: str  # the variable holding its token: a secret
    account: str  # the variable naming the organization / team deployed into
    variables: tuple[str, ...] = ()  # the others the runner reads for it
    token_aliases: tuple[str, ...] = ()  # other names its token takes in a CLI's environment


GITHUB = Provider(
    "github",
    "GitHub",
    "GH_TOKEN",
    "GH_ORG",
    variables=("FORGE_GITHUB_API_URL", "FORGE_GITHUB_GIT_URL"),
    token_aliases=("GH_ENTERPRISE_TOKEN",),  # what `gh` reads for an enterprise host
)
SUPABASE = Provider(
    "supabase",
    "Supabase",
    "SUPABASE_ACCESS_TOKEN",
    "SUPABASE_ORG_ID",
    variables=(
        "SUPABASE_REGION",
        "SUPABASE_PROFILE",
        "FORGE_SUPABASE_API_URL",
        "FORGE_SUPABASE_PROJECT_URL",
    ),
)
VERCEL = Provider(
    "vercel",
    "Vercel",
    "VERCEL_TOKEN",
    "VERCEL_ORG_ID",
    variables=("FORGE_VERCEL_API_URL",),
)
PROVIDERS = (GITHUB, SUPABASE, VERCEL)

# The tokens: the secrets a deploy is given (the runner reads the first of each provider).
TOKEN_NAMES = tuple(name for p in PROVIDERS for name in (p.token, *p.token_aliases))
SEAL_PRIVATE_KEY = "FORGE_SEAL_PRIVATE_KEY"  # opens the sealed database password
SECRET_NAMES = (*TOKEN_NAMES, SEAL_PRIVATE_KEY)  # every variable whose value is a secret

# Every variable of a provider: its token (under each name), its account, the others.
PROVIDER_VARIABLES = tuple(
    name for p in PROVIDERS for name in (p.token, *p.token_aliases, p.account, *p.variables)
)

# What a dispatcher hands each deploy's runner from its own environment, when set: each
# provider's variables, then the runner's own (a CA file, health check, timing knobs, and the
# exposure policy a deploy request may also set for itself).
RUNNER_VARIABLES = (
    *(name for p in PROVIDERS for name in (p.token, p.account, *p.variables)),
    "FORGE_CA_FILE",
    "FORGE_HEALTH_PATH",
    "FORGE_HEALTH_REDEPLOYS",
    "FORGE_HTTP_TIMEOUT_S",
    "FORGE_POLL_INTERVAL_S",
    "FORGE_BACKOFF_SCALE",
    "FORGE_HEARTBEAT_S",
    "FORGE_VERCEL_UPLOADS",
    "FORGE_EXPOSURE_POLICY",
)
