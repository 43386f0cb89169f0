"""API keys with roles, stored hashed.

A key is a high-entropy random string (``sr_`` + 43 URL-safe characters, 256 bits) that the
storefront sends as ``Authorization: Bearer <key>``. The server only ever holds its SHA-256
(a slow password hash buys nothing for a 256-bit random secret), configured as ``role:sha256hex``
entries in ``SOCIALREC_API_KEYS`` and/or one per line in the file ``SOCIALREC_API_KEYS_FILE``::

    storefront:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    events:...
    admin:...

Roles: ``storefront`` reads recommendations and customer value; ``events`` writes events and
registers users/items; ``admin`` reloads versions and reads retrain status. ``admin`` may do
everything. No key → 401, a key without the route's role → 403. Keys and raw user ids never
reach a log line: the access log is replaced by :mod:`api.metrics`, which logs route templates.

When auth applies (:func:`auth_enabled`): ``SOCIALREC_AUTH_REQUIRED`` decides when set; otherwise
auth is on whenever keys are configured or the mode is ``production``. A production server with
auth on and no keys refuses every call (401), which is the safe failure.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

ROLES = ("storefront", "events", "admin")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ApiKeyConfigError(ValueError):
    """A malformed ``role:sha256hex`` entry (the message names the entry's position, never a hash)."""


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key (what the server stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(role: str) -> tuple[str, str]:
    """A new random key for ``role`` and its configuration line.

    Returns:
        ``(key, "role:sha256hex")``; give the key to the client, put the line in the keys file.
    Raises:
        ValueError: unknown role.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    key = "sr_" + secrets.token_urlsafe(32)
    return key, f"{role}:{hash_key(key)}"


def parse_key_entries(entries: Iterable[str], source: str) -> list[tuple[str, str]]:
    """Parse ``role:sha256hex`` entries.

    Args:
        entries: the entries (blank ones and ``#`` comments are skipped).
        source: where they came from, for error messages.
    Returns:
        ``[(role, digest), ...]``.
    Raises:
        ApiKeyConfigError: an entry without a known role or with a digest that is not 64 hex chars.
    """
    out = []
    for n, raw in enumerate(entries, start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        role, sep, digest = entry.partition(":")
        role, digest = role.strip(), digest.strip().lower()
        if not sep or role not in ROLES:
            raise ApiKeyConfigError(f"{source}: entry {n}: expected 'role:sha256hex' with role in {', '.join(ROLES)}")
        if not _HEX64.match(digest):
            raise ApiKeyConfigError(f"{source}: entry {n}: the hash must be 64 hex characters (SHA-256 of the key)")
        out.append((role, digest))
    return out


@dataclass(frozen=True)
class KeyRing:
    """The configured key hashes and whether auth applies.

    Attributes:
        entries: ``(role, sha256hex)`` pairs.
        required: True = every protected route needs a key with the right role.
    """

    entries: tuple[tuple[str, str], ...] = ()
    required: bool = False

    def role_of(self, key: str) -> str | None:
        """The role of a presented key, or None when it matches no configured hash.

        Every configured digest is compared with :func:`hmac.compare_digest` (no early exit), so
        the time taken does not reveal which entry, if any, matched.
        """
        digest = hash_key(key)
        found = None
        for role, expected in self.entries:
            if hmac.compare_digest(digest, expected) and found is None:
                found = role
        return found

    def allows(self, role: str | None, needed: str) -> bool:
        """``admin`` may call everything; other roles only their own routes."""
        return role is not None and (role == needed or role == "admin")


def auth_enabled(auth_required: bool | None, mode: str, has_keys: bool) -> bool:
    """The auth rule: the explicit setting wins; else on with keys configured or in production."""
    if auth_required is not None:
        return bool(auth_required)
    return has_keys or mode == "production"


def load_keyring(settings) -> KeyRing:
    """Build the :class:`KeyRing` from :class:`api.settings.Settings`.

    Raises:
        ApiKeyConfigError: malformed entries. FileNotFoundError: ``api_keys_file`` missing.
    """
    entries: list[tuple[str, str]] = []
    if settings.api_keys is not None:
        text = settings.api_keys.get_secret_value()
        entries += parse_key_entries(re.split(r"[,\s]+", text), "SOCIALREC_API_KEYS")
    if settings.api_keys_file is not None:
        path = Path(settings.api_keys_file)
        entries += parse_key_entries(path.read_text().splitlines(), str(path))
    return KeyRing(tuple(entries), auth_enabled(settings.auth_required, settings.mode, bool(entries)))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent/other scheme)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
