"""Sealed pieces: the inner zip encrypted with AES-256-GCM under a key scrypt derives from the state-key.

A sealed piece holds only `checkpoint.sealed` (magic and version, salt, nonce, ciphertext) and
`manifest-public.json`, which is bound to the ciphertext as associated data so it cannot be altered either.
A checkpoint is many pieces, so one process seals all of its pieces under one salt (each with its own random
nonce) and remembers the keys it derived: scrypt runs once per salt, not once per piece.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zipfile

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from planeteer_action.checkpoints.errors import CheckpointInvalid, CheckpointKeyMismatch
from planeteer_action.checkpoints.zip_io import Limits, read_members, write_zip

SEALED = "checkpoint.sealed"
PUBLIC_MANIFEST = "manifest-public.json"
MAGIC = b"PLNTSEAL\x01"  # the last byte is the sealed format's version
_SALT_SIZE = 16
_NONCE_SIZE = 12
_HEADER_SIZE = len(MAGIC) + _SALT_SIZE + _NONCE_SIZE
# Fixed per sealed version, so a reader never takes cost parameters from untrusted input.
_SCRYPT = {"length": 32, "n": 2**15, "r": 8, "p": 1}


# This process's salt for what it seals; random nonces keep AES-GCM safe far beyond a run's pieces.
_PROCESS_SALT = os.urandom(_SALT_SIZE)


@functools.lru_cache(maxsize=8)
def derive_key(secret: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, **_SCRYPT).derive(secret.encode("utf-8"))


def seal(inner: bytes, key: str, public: bytes) -> bytes:
    """The sealed piece of the zip `inner`, showing `public` in clear."""
    salt, nonce = _PROCESS_SALT, os.urandom(_NONCE_SIZE)
    header = MAGIC + salt + nonce
    sealed = header + AESGCM(derive_key(key, salt)).encrypt(nonce, inner, header + public)
    return write_zip({PUBLIC_MANIFEST: public, SEALED: sealed}, zipfile.ZIP_STORED)


def unseal(archive: zipfile.ZipFile, key: str, limits: Limits) -> tuple[bytes, bytes]:
    """The public manifest and the decrypted inner zip of a sealed piece."""
    outer_limits = dataclasses.replace(
        limits,
        max_members=2,
        max_member_bytes=limits.max_archive_bytes,
        max_total_bytes=limits.max_archive_bytes,
    )
    outer = read_members(archive, outer_limits, lambda name: name in (SEALED, PUBLIC_MANIFEST))
    if PUBLIC_MANIFEST not in outer:
        raise CheckpointInvalid(f"sealed checkpoint lacks {PUBLIC_MANIFEST}: the checkpoint is damaged")
    public, blob = outer[PUBLIC_MANIFEST], outer[SEALED]
    if len(blob) < _HEADER_SIZE or not blob.startswith(MAGIC):
        raise CheckpointInvalid(f"{SEALED} is not in a sealed format this version reads: upgrade planeteer")
    header = blob[:_HEADER_SIZE]
    salt = header[len(MAGIC) : len(MAGIC) + _SALT_SIZE]
    nonce = header[len(MAGIC) + _SALT_SIZE :]
    try:
        return public, AESGCM(derive_key(key, salt)).decrypt(nonce, blob[_HEADER_SIZE:], header + public)
    except InvalidTag:
        raise CheckpointKeyMismatch(
            "checkpoint does not decrypt with this state-key (wrong key or tampered): "
            "set state-key to the secret used when it was saved"
        ) from None
