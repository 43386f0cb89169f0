"""``*_FILE`` secrets (Docker secrets): the file's content is the value, never both."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import Settings

NASTY = "pa ss$word;\"'`\\n"


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith("SOCIALREC_"):
            monkeypatch.delenv(k)
    return monkeypatch


def test_secret_files_give_the_values_with_the_trailing_newline_stripped(clean_env, tmp_path):
    for name, value in (("pw", NASTY), ("key", "k" * 40), ("hashes", "admin:" + "a" * 64)):
        (tmp_path / name).write_text(value + "\n")
    clean_env.setenv("SOCIALREC_NEO4J_PASSWORD_FILE", str(tmp_path / "pw"))
    clean_env.setenv("SOCIALREC_PSEUDONYM_KEY_FILE", str(tmp_path / "key"))
    clean_env.setenv("SOCIALREC_API_KEYS_HASHES_FILE", str(tmp_path / "hashes"))
    s = Settings()
    assert s.neo4j_password.get_secret_value() == NASTY
    assert s.pseudonym_key.get_secret_value() == "k" * 40
    assert s.api_keys.get_secret_value() == "admin:" + "a" * 64


def test_variable_and_file_together_is_a_configuration_error(clean_env, tmp_path):
    (tmp_path / "pw").write_text("secret-pw")
    clean_env.setenv("SOCIALREC_NEO4J_PASSWORD_FILE", str(tmp_path / "pw"))
    clean_env.setenv("SOCIALREC_NEO4J_PASSWORD", "other")
    with pytest.raises(ValidationError, match="not both"):
        Settings()


def test_missing_secret_file_is_a_configuration_error(clean_env, tmp_path):
    clean_env.setenv("SOCIALREC_PSEUDONYM_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match="cannot read"):
        Settings()
