"""The JWT signing keys of a project's auth service: an asymmetric ES256 key (what projects sign
users' tokens with today, published at `/auth/v1/.well-known/jwks.json`) and the legacy shared
HS256 secret, which still verifies tokens it signed (docs: auth/signing-keys).

Which one is `in_use` follows the project's defaults: a project of today's defaults signs with
the ES256 key and lists the HS256 secret as `previously_used`; one with the 2025 defaults has
not rotated yet, so HS256 is `in_use` and ES256 `standby`. Tokens signed with either verify:
the sandbox has no sign-in, so tests sign users' tokens with the private key or the secret that
the resources document lists, as one signs with a local stack's printed keys.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sandbox.supabase.platform import API_ROLES


class JwtRefused(Exception):
    """PostgREST's PGRST301: the token is not valid for this project."""


def new_signing_key(created_at: str) -> dict[str, Any]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {"id": str(uuid.uuid4()), "private_pem": pem, "created_at": created_at}


def ensure_signing_key(material: dict[str, Any], created_at: str) -> bool:
    """Give key material made by an older sandbox its ES256 key; True when one was added."""
    if "signing" in material:
        return False
    material["signing"] = new_signing_key(created_at)
    return True


def _private(material: dict[str, Any]) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(material["signing"]["private_pem"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def public_jwk(material: dict[str, Any]) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(_private(material).public_key()))
    jwk.update(kid=material["signing"]["id"], alg="ES256", use="sig", key_ops=["verify"])
    return jwk


def jwks(material: dict[str, Any]) -> dict[str, Any]:
    """`/auth/v1/.well-known/jwks.json`: the public keys (a shared secret is never published)."""
    return {"keys": [public_jwk(material)]}


def listing(material: dict[str, Any], asymmetric_in_use: bool) -> dict[str, Any]:
    """`GET /v1/projects/{ref}/config/auth/signing-keys` (`SigningKeysResponse`)."""
    signing = material["signing"]
    return {
        "keys": [
            {
                "id": signing["id"],
                "algorithm": "ES256",
                "status": "in_use" if asymmetric_in_use else "standby",
                "public_jwk": public_jwk(material),
                "created_at": signing["created_at"],
                "updated_at": signing["created_at"],
            },
            {
                "id": material["jwt_secret_id"],
                "algorithm": "HS256",
                "status": "previously_used" if asymmetric_in_use else "in_use",
                "public_jwk": None,
                "created_at": material["inserted_at"],
                "updated_at": material["inserted_at"],
            },
        ]
    }


def verify(token: str, material: dict[str, Any]) -> dict[str, Any]:
    """The claims of a JWT signed by one of the project's keys; `JwtRefused` otherwise. The
    `role` claim must be one of the API roles (the sandbox's cluster is shared by every
    project, so a token naming another role is refused)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise JwtRefused(f"JWSError {type(e).__name__}: {e}") from e
    algorithm = header.get("alg")
    key: Any
    if algorithm == "ES256":
        if header.get("kid") not in (None, material["signing"]["id"]):
            raise JwtRefused("No suitable key or wrong key type")
        key = _private(material).public_key()
    elif algorithm == "HS256":
        key = material["jwt_secret"]
    else:
        raise JwtRefused(f"JWSError JWSInvalidAlgorithm: {algorithm}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[str(algorithm)],
            options={"verify_aud": False, "require": ["role"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise JwtRefused("JWT expired") from e
    except jwt.InvalidSignatureError as e:
        raise JwtRefused("JWSError JWSInvalidSignature") from e
    except jwt.PyJWTError as e:
        raise JwtRefused(f"JWSError {type(e).__name__}: {e}") from e
    if claims.get("role") not in API_ROLES:
        raise JwtRefused(f"the role claim must be one of {', '.join(API_ROLES)} (sandbox)")
    return claims
