"""Keeping API keys out of logs, error text and pages.

Every key this process decrypts or reads from the environment is remembered here, and
`scrub()` replaces it (and anything shaped like a bearer token) wherever text leaves the
process: exception messages, PollRun errors, log records.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
_known: set[str] = set()
_TOKEN_SHAPES = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/]+=*"  # Authorization header values
    r"|\b(?:gsk|hf|sk|pk|di)_[A-Za-z0-9_\-]{8,}"  # Groq, Hugging Face, OpenAI-style keys
    r"|(?i:api_key=)[^&\s]+"
)


def remember(secret: str) -> str:
    """Register a secret so that it is scrubbed from text; returns it unchanged."""
    if secret and len(secret) >= 4:
        _known.add(secret)
    return secret


def scrub(text: str) -> str:
    for secret in sorted(_known, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _TOKEN_SHAPES.sub(lambda m: (m.group(1) or "") + REDACTED, text)


def fingerprint(secret: str) -> str:
    return f"…{secret[-4:]}" if secret else ""


class ScrubSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
