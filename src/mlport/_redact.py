"""Keep credentials out of messages, logs and reprs.

Two layers: patterns that look like secrets wherever they appear (AWS secret keys in
``key=value`` form, bearer tokens, SAS signatures, storage account keys, passwords in URLs), and
exact values registered at run time (the token of a server we started, a key a provider fetched).
"""

from __future__ import annotations

import re
import threading

_MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers and bearer tokens.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + _MASK),
    # key=value / key: value pairs whose key names a secret.
    (
        re.compile(
            r"(?i)\b((?:aws_)?secret(?:_access)?_key|secretaccesskey|session_token|"
            r"accountkey|account_key|sharedaccesskey|password|passwd|pwd|client_secret|"
            r"api[_-]?key|access[_-]?token|auth[_-]?token|token|sig|signature|x-amz-signature|x-amz-security-token)"
            r"(\"?\s*[=:]\s*\"?)([^\s\"'&;,]+)"
        ),
        r"\1\2" + _MASK,
    ),
    # Credentials in URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]+):([^\s/@]+)@"), r"\1:" + _MASK + "@"),
    # Private keys in PEM form.
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "-----PRIVATE KEY " + _MASK + "-----",
    ),
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it later appears in an mlport message or log line.

    Values shorter than 6 characters are ignored: masking them would garble ordinary text.
    """
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with registered secrets and secret-looking values masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, _MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
