"""Configuration in one place: every ``SOCIALREC_*`` variable is read here and nowhere else."""

from __future__ import annotations

from pathlib import Path

import hashlib
import hmac
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_PSEUDONYM_KEY = "socialrec-demo-key-not-for-production"
#: Shortest production pseudonym key (HMAC-SHA256: a key below the hash's 32-byte output is guessable sooner).
MIN_PSEUDONYM_KEY_BYTES = 32


class ConfigError(ValueError):
    """The configuration is missing or inconsistent (the CLI exits 2 and names the variable)."""


class Settings(BaseSettings):
    """socialrec configuration, from ``SOCIALREC_*`` environment variables or a ``.env`` file.

    Attributes:
        home: ``SOCIALREC_HOME`` — embedded store, model versions, reports, logs.
        data_dir: ``SOCIALREC_DATA_DIR`` — local dataset folders; None = download.
        neo4j_uri, neo4j_user, neo4j_password: Neo4j store; unset URI = embedded store.
        pseudonym_key: ``SOCIALREC_PSEUDONYM_KEY``; the demo key is refused unless ``mode`` is
            ``demo`` or ``test``.
        mode: ``SOCIALREC_MODE`` — ``production`` (default), ``demo`` or ``test``.
        dataset: ``SOCIALREC_DATASET`` — the dataset the API serves; None = the latest promoted.
        neo4j_heap, neo4j_pagecache: ``SOCIALREC_NEO4J_HEAP`` / ``_PAGECACHE`` — memory of the local
            server started by ``socialrec neo4j start``.

    Serving (see ``docs/serving.md``):
        api_keys: ``SOCIALREC_API_KEYS`` — ``role:sha256hex`` entries separated by commas or
            whitespace (hashes of the keys, never the keys).
        api_keys_file: ``SOCIALREC_API_KEYS_FILE`` — a file with one ``role:sha256hex`` per line
            (``#`` comments allowed); merged with ``api_keys``.
        auth_required: ``SOCIALREC_AUTH_REQUIRED`` — None (default) = on when keys are configured
            or ``mode`` is ``production``; an explicit true/false overrides that rule.
        max_k: largest ``k`` a request may ask for.
        max_body_bytes: largest request body accepted (413 beyond it).
        max_batch_events: most events in one ``POST /v1/events`` (422 beyond it).
        reload_poll_seconds: how often the server checks ``promoted.json`` for a new version;
            0 = no watcher (``POST /v1/admin/reload`` still works).
        queue_dir: the durable local event queue; None = ``home/queue``.
        replay_interval_seconds: how often the background replayer retries undelivered events.
        quality_gate_tolerance: the nightly retrain promotes only if no tracked metric of the new
            version is below the production version's by more than this fraction (0.05 = 5 %).
        retrain_models: models the nightly retrain trains (comma-separated).
        retrain_tune: tune hyper-parameters in the nightly retrain.
        retrain_with_value: also recompute customer value / segments and write them back.

    Secrets from files (Docker/Kubernetes secrets): ``SOCIALREC_NEO4J_PASSWORD_FILE``,
    ``SOCIALREC_PSEUDONYM_KEY_FILE`` and ``SOCIALREC_API_KEYS_HASHES_FILE`` name a file whose content
    (one trailing newline stripped) is the value of ``neo4j_password`` / ``pseudonym_key`` /
    ``api_keys``. Setting both a variable and its ``_FILE`` is a :class:`ConfigError`, and so is an
    unreadable file. (``SOCIALREC_API_KEYS_FILE`` is the older one-hash-per-line keys file, above.)
        kind_weights: ``SOCIALREC_KIND_WEIGHTS`` — per-kind confidence weights when a dataset mixes
            interaction kinds, e.g. ``purchase=1,rating=1,play=1,view=0.25`` (the default; see
            :data:`graph.snapshot.DEFAULT_KIND_WEIGHTS`).
    """

    model_config = SettingsConfigDict(env_prefix="SOCIALREC_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("./.socialrec"))
    data_dir: Path | None = None
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    pseudonym_key: SecretStr | None = None
    mode: Literal["production", "demo", "test"] = "production"
    dataset: str | None = None
    neo4j_heap: str = "2g"
    neo4j_pagecache: str = "512m"
    # serving: auth, limits, hot swap, events, nightly retrain
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None
    auth_required: bool | None = None
    max_k: int = 100
    max_body_bytes: int = 1_048_576
    max_batch_events: int = 1000
    reload_poll_seconds: float = 5.0
    queue_dir: Path | None = None
    replay_interval_seconds: float = 2.0
    quality_gate_tolerance: float = 0.05
    retrain_models: str = "popular,als,itemcf"
    retrain_tune: bool = True
    retrain_with_value: bool = True
    # secrets read from files (Docker secrets): *_FILE variables
    neo4j_password_file: Path | None = None
    pseudonym_key_file: Path | None = None
    api_keys_hashes_file: Path | None = None

    @model_validator(mode="after")
    def _secrets_from_files(self) -> "Settings":
        for field, file_field in (("neo4j_password", "neo4j_password_file"), ("pseudonym_key", "pseudonym_key_file"),
                                  ("api_keys", "api_keys_hashes_file")):
            path = getattr(self, file_field)
            if path is None:
                continue
            variable = f"SOCIALREC_{field.upper()}"
            if getattr(self, field) is not None:
                raise ConfigError(f"set {variable} or {variable}_FILE (for api_keys: SOCIALREC_API_KEYS_HASHES_FILE), not both")
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{variable}_FILE={path}: cannot read it ({exc.strerror})") from None
            text = text[:-1] if text.endswith("\n") else text
            text = text[:-1] if text.endswith("\r") else text
            if not text:
                raise ConfigError(f"{variable}_FILE={path} is empty")
            setattr(self, field, SecretStr(text))
        return self
    kind_weights: str | None = None

    def resolved_pseudonym_key(self) -> bytes:
        """The HMAC key for user-id pseudonyms.

        Raises:
            ConfigError: no key configured outside demo/test mode, the demo key used in production,
                or a production key shorter than 32 bytes / with fewer than 8 distinct characters.
        """
        key = self.pseudonym_key.get_secret_value() if self.pseudonym_key else None
        if self.mode in ("demo", "test"):
            return (key or DEMO_PSEUDONYM_KEY).encode()
        if not key or key == DEMO_PSEUDONYM_KEY:
            raise ConfigError(
                "SOCIALREC_PSEUDONYM_KEY must be set to a secret outside demo/test mode "
                "(SOCIALREC_MODE=demo uses a built-in demo key)"
            )
        if len(key.encode()) < MIN_PSEUDONYM_KEY_BYTES or len(set(key)) < 8:
            raise ConfigError(
                f"SOCIALREC_PSEUDONYM_KEY is too weak for production: at least {MIN_PSEUDONYM_KEY_BYTES} bytes and "
                f"8 distinct characters are required (got {len(key.encode())} bytes); generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return key.encode()

    def pseudonym_key_id(self) -> str:
        """A short public fingerprint of the pseudonym key (HMAC of a constant, 12 hex digits).

        Stored in each model version's manifest so that the server refuses a version built with
        another key (whose pseudonyms it could never match). Reveals nothing about the key.
        """
        return hmac.new(self.resolved_pseudonym_key(), b"socialrec-key-id", hashlib.sha256).hexdigest()[:12]

    def parsed_kind_weights(self) -> dict[str, float] | None:
        """``kind_weights`` as ``{kind: weight}`` (None when unset).

        Raises:
            ConfigError: not ``kind=number`` pairs, or a negative weight.
        """
        if not self.kind_weights:
            return None
        out = {}
        for part in self.kind_weights.replace(";", ",").split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            try:
                weight = float(value)
            except ValueError:
                weight = -1.0
            if not sep or not name.strip() or not (weight >= 0):
                raise ConfigError(f"SOCIALREC_KIND_WEIGHTS: expected kind=weight pairs (weight >= 0), got {part!r}")
            out[name.strip()] = weight
        return out

    def store_kwargs(self) -> dict:
        """Keyword arguments for :func:`graph.store.open_store`."""
        return {
            "kind_weights": self.parsed_kind_weights(),
            "home": self.home,
            "neo4j_uri": self.neo4j_uri,
            "neo4j_user": self.neo4j_user,
            "neo4j_password": self.neo4j_password.get_secret_value() if self.neo4j_password else None,
        }

    def resolved_queue_dir(self) -> Path:
        """The durable event queue's folder (``queue_dir`` or ``home/queue``)."""
        return Path(self.queue_dir) if self.queue_dir else Path(self.home) / "queue"
