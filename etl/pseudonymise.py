"""Keyed pseudonyms for user ids.

Every user id that enters the ETL (users, interaction/review authors, both ends of a follow) is
replaced by ``"u_" + HMAC-SHA256(key, raw_id)[:20 hex]`` before it is validated, stored, written
to the quarantine file or logged. The mapping is deterministic for a key, so the HTTP API maps a
shop's raw id to the same pseudonym with :meth:`Pseudonymiser.user`; without the key the raw id
cannot be recovered (not even for small integer ids, which an unkeyed hash would leak).

Item ids are not personal data and stay as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

import pandas as pd

#: Hex characters of the HMAC kept in a pseudonym: 80 bits, collision-free in practice for
#: any realistic user count (birthday bound ~1e12 users).
PSEUDONYM_HEX_CHARS = 20
PSEUDONYM_PREFIX = "u_"


class Pseudonymiser:
    """Maps raw user ids to keyed, deterministic pseudonyms.

    Args:
        key: the secret (``SOCIALREC_PSEUDONYM_KEY`` encoded as bytes); at least 1 byte.
    Raises:
        ValueError: empty key. TypeError: key not bytes.
    Source: HMAC (RFC 2104) with SHA-256 (FIPS 180-4).
    """

    def __init__(self, key: bytes):
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError("pseudonym key must be bytes")
        if not key:
            raise ValueError("pseudonym key must not be empty")
        self._key = bytes(key)

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(key=<hidden>)"

    def user(self, raw_id: str) -> str:
        """Pseudonym of one raw user id.

        Args:
            raw_id: the shop's / dataset's user id; converted with ``str()`` and stripped of
                surrounding whitespace and put in Unicode NFC (the ETL's id rule,
                :func:`etl.validate.canonical_id`), so ``" 42"``, ``"42"``
                and ``42`` map to the same pseudonym.
        Returns:
            ``"u_"`` + 20 lower-case hex characters.
        """
        text = unicodedata.normalize("NFC", str(raw_id).strip())
        digest = hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_CHARS]

    def users(self, raw_ids: pd.Series) -> pd.Series:
        """Vectorised :meth:`user` over a Series (hashes each distinct id once).

        Args:
            raw_ids: (n,) Series of raw ids (str or numbers); nulls stay null.
        Returns:
            (n,) object Series of pseudonyms, same index.
        """
        values = raw_ids.astype(object)
        present = values.notna()
        text = values[present].astype(str).str.strip().str.normalize("NFC")
        uniques = text.unique()
        mapping = dict(zip(uniques, (self.user(u) for u in uniques)))
        out = pd.Series(None, index=raw_ids.index, dtype=object)
        out[present] = text.map(mapping)
        return out
