"""A project's API keys: legacy `anon` / `service_role` JWTs signed with the project's own JWT
secret (HS256), plus the new-style `default` publishable and secret keys.

Secret keys are masked unless the caller asks `reveal=true`, as the real API does.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid
from typing import Any

import jwt

TEN_YEARS_S = 10 * 365 * 24 * 3600
_ALPHABET = string.ascii_letters + string.digits


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _opaque(kind: str) -> str:
    """`sb_<kind>_<22 random>_<8-char checksum>`, the shape of the real opaque keys."""
    body = f"sb_{kind}_{_random(22)}"
    return f"{body}_{hashlib.sha256(body.encode()).hexdigest()[:8]}"


def new_key_material(ref: str, created: float, inserted_at: str) -> dict[str, Any]:
    """Everything key-related a new project stores (generated once, kept in the state file)."""
    jwt_secret = _random(40)
    legacy = {
        role: jwt.encode(
            {
                "iss": "supabase",
                "ref": ref,
                "role": role,
                "iat": int(created),
                "exp": int(created) + TEN_YEARS_S,
            },
            jwt_secret,
            algorithm="HS256",
        )
        for role in ("anon", "service_role")
    }
    return {
        "jwt_secret": jwt_secret,
        "anon": legacy["anon"],
        "service_role": legacy["service_role"],
        "publishable": {"id": str(uuid.uuid4()), "key": _opaque("publishable")},
        "secret": {"id": str(uuid.uuid4()), "key": _opaque("secret")},
        "inserted_at": inserted_at,
    }


def all_keys(material: dict[str, Any]) -> list[str]:
    """Every key value that opens the project's tenant endpoints."""
    return [
        material["anon"],
        material["service_role"],
        material["publishable"]["key"],
        material["secret"]["key"],
    ]


def _mask(key: str) -> str:
    return key[: len("sb_secret_") + 4] + "•" * 24


def api_key_items(material: dict[str, Any], reveal: bool) -> list[dict[str, Any]]:
    """The `GET /v1/projects/{ref}/api-keys` answer (items of the spec's `ApiKeyResponse`)."""
    inserted = material["inserted_at"]
    items: list[dict[str, Any]] = [
        {
            "name": role,
            "api_key": material[role],
            "id": role,
            "type": "legacy",
            "prefix": None,
            "description": description,
            "hash": None,
            "secret_jwt_template": None,
            "inserted_at": None,
            "updated_at": None,
        }
        for role, description in (
            ("anon", "Legacy anon API key"),
            ("service_role", "Legacy service_role API key"),
        )
    ]
    publishable = material["publishable"]
    secret = material["secret"]
    items.append(
        {
            "name": "default",
            "api_key": publishable["key"],
            "id": publishable["id"],
            "type": "publishable",
            "prefix": None,
            "description": None,
            "hash": None,
            "secret_jwt_template": None,
            "inserted_at": inserted,
            "updated_at": inserted,
        }
    )
    items.append(
        {
            "name": "default",
            "api_key": secret["key"] if reveal else _mask(secret["key"]),
            "id": secret["id"],
            "type": "secret",
            "prefix": secret["key"][: len("sb_secret_") + 4],
            "description": None,
            "hash": hashlib.sha256(secret["key"].encode()).hexdigest(),
            "secret_jwt_template": {"role": "service_role"},
            "inserted_at": inserted,
            "updated_at": inserted,
        }
    )
    return items
