"""Configuration in one place: every ``SOCIALREC_*`` variable is read here and nowhere else."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_PSEUDONYM_KEY = "socialrec-demo-key-not-for-production"


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
    """

    model_config = SettingsConfigDict(env_prefix="SOCIALREC_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("./.socialrec"))
    data_dir: Path | None = None
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    pseudonym_key: SecretStr | None = None
    mode: str = "production"
    dataset: str | None = None

    def resolved_pseudonym_key(self) -> bytes:
        """The HMAC key for user-id pseudonyms.

        Raises:
            ValueError: no key configured outside demo/test mode, or the demo key used in production.
        """
        key = self.pseudonym_key.get_secret_value() if self.pseudonym_key else None
        if self.mode in ("demo", "test"):
            return (key or DEMO_PSEUDONYM_KEY).encode()
        if not key or key == DEMO_PSEUDONYM_KEY:
            raise ValueError(
                "SOCIALREC_PSEUDONYM_KEY must be set to a secret outside demo/test mode "
                "(SOCIALREC_MODE=demo uses a built-in demo key)"
            )
        return key.encode()

    def store_kwargs(self) -> dict:
        """Keyword arguments for :func:`graph.store.open_store`."""
        return {
            "home": self.home,
            "neo4j_uri": self.neo4j_uri,
            "neo4j_user": self.neo4j_user,
            "neo4j_password": self.neo4j_password.get_secret_value() if self.neo4j_password else None,
        }
