"""Encryption at rest for provider API keys (Fernet, rotatable through MultiFernet)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

__all__ = ("InvalidToken", "decrypt", "encrypt", "readable", "rotate")


def _fernet() -> MultiFernet:
    keys = list(settings.GPUBROKER_ENCRYPTION_KEYS)
    if not keys:
        # DEBUG only (settings refuse to start without keys otherwise): a key derived from
        # SECRET_KEY, so a local checkout works without set-up.
        digest = hashlib.sha256(settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    return _fernet().rotate(token.encode()).decode()


def readable(token: str) -> bool:
    """Whether one of the current keys can decrypt `token`: its signature is checked, nothing
    is decrypted (pages that only say whether a key works never hold it in clear)."""
    try:
        _fernet().extract_timestamp(token.encode())
    except InvalidToken:
        return False
    return True
