"""The generated database password crosses containers only sealed (PyNaCl sealed box).

The caller hands in a Curve25519 public key (`FORGE_SEAL_PUBLIC_KEY`); the runner emits the
password sealed to it, in a checkpoint. To resume in a new container the caller hands the sealed
value back with the private key (`FORGE_SEAL_PRIVATE_KEY`, a secret like the tokens), and the
runner opens it. The plaintext is never stored or logged.
"""

from __future__ import annotations

import base64

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from runner.errors import BadInput


def new_keypair() -> tuple[str, str]:
    """(public, private), base64: what `forge-runner keygen` prints."""
    key = PrivateKey.generate()
    return (
        base64.b64encode(bytes(key.public_key)).decode(),
        base64.b64encode(bytes(key)).decode(),
    )


def seal(public_key: bytes, plaintext: str) -> str:
    return base64.b64encode(SealedBox(PublicKey(public_key)).encrypt(plaintext.encode())).decode()


def unseal(private_key: bytes, sealed: str) -> str:
    try:
        return SealedBox(PrivateKey(private_key)).decrypt(base64.b64decode(sealed)).decode()
    except (CryptoError, ValueError) as e:
        raise BadInput(
            "the sealed database password does not open with FORGE_SEAL_PRIVATE_KEY"
        ) from e
