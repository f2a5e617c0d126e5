"""A project's API keys: the legacy `anon` / `service_role` JWTs signed with the project's JWT
secret (HS256), which can be disabled together and are still listed when they are, and the
opaque publishable and secret keys (`sb_publishable_...`, `sb_secret_...`), which can be
created, renamed and deleted.

Secret keys are masked unless the caller asks `reveal=true`, as the real API does. Facts and
choices (../shared/specs/README.md, last section):
- a new project has one publishable and one secret key, both named `default`; the legacy pair's
  ids are their names;
- only one publishable key per project (the announcement: "a single publishable key"); secret
  keys may be many;
- names match `^[a-z_][a-z0-9_]+$` (4 to 64 characters) and are unique per project and type
  (not confirmed: the sandbox answers 409 to a second key of one name, so a client that retries
  a create after a lost answer sees it).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import uuid
from typing import Any

import jwt

from sandbox.supabase.errors import ApiError, reject_unknown

TEN_YEARS_S = 10 * 365 * 24 * 3600
_ALPHABET = string.ascii_letters + string.digits
NAME = re.compile(r"^[a-z_][a-z0-9_]+$")
LEGACY = ("anon", "service_role")
OPAQUE_TYPES = ("publishable", "secret")
_LEGACY_DESCRIPTIONS = {
    "anon": "Legacy anon API key",
    "service_role": "Legacy service_role API key",
}


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _opaque(kind: str) -> str:
    """`sb_<kind>_<22 random>_<8-char checksum>`, the shape of the real opaque keys."""
    body = f"sb_{kind}_{_random(22)}"
    return f"{body}_{hashlib.sha256(body.encode()).hexdigest()[:8]}"


def _new_opaque(kind: str, name: str, at: str, description: str | None = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "name": name,
        "key": _opaque(kind),
        "description": description,
        "secret_jwt_template": {"role": "service_role"} if kind == "secret" else None,
        "inserted_at": at,
        "updated_at": at,
    }


def new_key_material(ref: str, created: float, inserted_at: str, legacy: bool) -> dict[str, Any]:
    """Everything key-related a new project stores (generated once, kept in the state file).
    `legacy`: whether the legacy JWT pair starts enabled."""
    jwt_secret = _random(40)
    pair = {
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
        for role in LEGACY
    }
    return {
        "jwt_secret": jwt_secret,
        "jwt_secret_id": str(uuid.uuid4()),  # its id among the signing keys
        **pair,
        "legacy_enabled": legacy,
        "opaque": [_new_opaque(k, "default", inserted_at) for k in OPAQUE_TYPES],
        "inserted_at": inserted_at,
    }


def upgrade(material: dict[str, Any]) -> bool:
    """Bring key material written by an older sandbox to this shape (its keys kept); True when
    something changed. Such a project was made before the legacy keys could be disabled."""
    if "opaque" in material:
        return False
    at = material["inserted_at"]
    material["opaque"] = [
        {**_new_opaque(k, "default", at), "id": material[k]["id"], "key": material[k]["key"]}
        for k in OPAQUE_TYPES
    ]
    for kind in OPAQUE_TYPES:
        material.pop(kind, None)
    material.setdefault("legacy_enabled", True)
    material.setdefault("jwt_secret_id", str(uuid.uuid4()))
    return True


def all_keys(material: dict[str, Any]) -> list[str]:
    """Every key value the project has (the legacy pair first, enabled or not)."""
    return [material["anon"], material["service_role"], *(k["key"] for k in material["opaque"])]


def first(material: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((k for k in material["opaque"] if k["type"] == kind), None)


def find_opaque(material: dict[str, Any], value: str) -> dict[str, Any] | None:
    """The opaque key whose value is `value` (compared in constant time)."""
    found = None
    for item in material["opaque"]:
        if secrets.compare_digest(item["key"].encode(), value.encode()):
            found = item
    return found


def _mask(key: str) -> str:
    return key[: len("sb_secret_") + 4] + "•" * 24


def _legacy_item(material: dict[str, Any], role: str) -> dict[str, Any]:
    return {
        "name": role,
        "api_key": material[role],
        "id": role,
        "type": "legacy",
        "prefix": None,
        "description": _LEGACY_DESCRIPTIONS[role],
        "hash": None,
        "secret_jwt_template": None,
        "inserted_at": None,
        "updated_at": None,
    }


def item(key: dict[str, Any], reveal: bool) -> dict[str, Any]:
    """One opaque key as `ApiKeyResponse`."""
    secret = key["type"] == "secret"
    return {
        "name": key["name"],
        "api_key": _mask(key["key"]) if secret and not reveal else key["key"],
        "id": key["id"],
        "type": key["type"],
        "prefix": key["key"][: len("sb_secret_") + 4] if secret else None,
        "description": key["description"],
        "hash": hashlib.sha256(key["key"].encode()).hexdigest() if secret else None,
        "secret_jwt_template": key["secret_jwt_template"],
        "inserted_at": key["inserted_at"],
        "updated_at": key["updated_at"],
    }


def api_key_items(material: dict[str, Any], reveal: bool) -> list[dict[str, Any]]:
    """The `GET /v1/projects/{ref}/api-keys` answer: the legacy pair (listed even when
    disabled, as the real API does), then every opaque key."""
    return [
        *(_legacy_item(material, role) for role in LEGACY),
        *(item(key, reveal) for key in material["opaque"]),
    ]


def lookup(material: dict[str, Any], key_id: str, reveal: bool) -> dict[str, Any]:
    """`GET .../api-keys/{id}`: an opaque key, or a legacy one by its name-id."""
    if key_id in LEGACY:
        return _legacy_item(material, key_id)
    return item(_opaque_by_id(material, key_id), reveal)


def _opaque_by_id(material: dict[str, Any], key_id: str) -> dict[str, Any]:
    found: dict[str, Any] | None = next((k for k in material["opaque"] if k["id"] == key_id), None)
    if found is None:
        if key_id in LEGACY:
            raise ApiError(400, "Legacy API keys cannot be changed here: use api-keys/legacy")
        raise ApiError(404, f"API key {key_id} not found")
    return found


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 4 <= len(value) <= 64 or not NAME.match(value):
        raise ApiError(400, "name must match ^[a-z_][a-z0-9_]+$ and be 4 to 64 characters long")
    return value


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    reject_unknown(body, allowed)
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise ApiError(400, "description must be a string")
    template = body.get("secret_jwt_template")
    if template is not None and not isinstance(template, dict):
        raise ApiError(400, "secret_jwt_template must be an object")


def _taken(material: dict[str, Any], kind: str, name: str, but: str | None = None) -> bool:
    return any(
        k["type"] == kind and k["name"] == name and k["id"] != but for k in material["opaque"]
    )


def create(material: dict[str, Any], body: dict[str, Any], at: str) -> dict[str, Any]:
    """`POST .../api-keys` (CreateApiKeyBody): the new key, stored in `material`."""
    _check_fields(body, {"type", "name", "description", "secret_jwt_template"})
    kind = body.get("type")
    if kind not in OPAQUE_TYPES:
        raise ApiError(400, "type must be one of the following values: publishable, secret")
    name = _name(body.get("name"))
    if kind == "publishable" and first(material, "publishable") is not None:
        raise ApiError(400, "A project has a single publishable key")
    if _taken(material, kind, name):
        raise ApiError(409, f"A {kind} API key named {name} already exists")
    key = _new_opaque(kind, name, at, body.get("description"))
    if kind == "secret" and body.get("secret_jwt_template") is not None:
        key["secret_jwt_template"] = body["secret_jwt_template"]
    material["opaque"].append(key)
    return key


def update(material: dict[str, Any], key_id: str, body: dict[str, Any], at: str) -> dict[str, Any]:
    """`PATCH .../api-keys/{id}` (UpdateApiKeyBody)."""
    key = _opaque_by_id(material, key_id)
    _check_fields(body, {"name", "description", "secret_jwt_template"})
    if "name" in body:
        name = _name(body["name"])
        if _taken(material, key["type"], name, but=key["id"]):
            raise ApiError(409, f"A {key['type']} API key named {name} already exists")
        key["name"] = name
    if "description" in body:
        key["description"] = body["description"]
    if "secret_jwt_template" in body and key["type"] == "secret":
        key["secret_jwt_template"] = body["secret_jwt_template"]
    key["updated_at"] = at
    return key


def delete(material: dict[str, Any], key_id: str) -> dict[str, Any]:
    """`DELETE .../api-keys/{id}`: the deleted key."""
    key = _opaque_by_id(material, key_id)
    material["opaque"] = [k for k in material["opaque"] if k["id"] != key_id]
    return key
