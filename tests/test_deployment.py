"""docker/ without Docker: the compose file against the Compose Specification's JSON schema, the
properties the deployment promises, and the service scripts' env-file quoting."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def test_compose_file_validates_against_the_compose_specification_schema():
    import jsonschema

    schema = json.loads((DOCKER / "spec" / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_a_broken_compose_file_fails_the_schema():
    import jsonschema

    schema = json.loads((DOCKER / "spec" / "compose-spec.json").read_text())
    broken = {"services": {"api": {"image": "x", "depends_on": {"neo4j": {"condition": "whenever"}}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(broken)


def test_compose_promises_of_the_deployment():
    s = COMPOSE["services"]
    assert not (DOCKER / "nightly" / "compose.snippet.yml").exists()
    neo4j_image = (DOCKER / "neo4j" / "Dockerfile").read_text()
    assert re.search(r"^FROM neo4j:5\.26\.30$", neo4j_image, flags=re.M)
    assert "NEO4J_PLUGINS" not in (DOCKER / "docker-compose.yml").read_text()
    assert s["api"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert "ready" in s["api"]["healthcheck"]["test"]
    assert "healthcheck" in s["nightly"] and "nightly" in s["nightly"]["healthcheck"]["test"]
    for name in ("neo4j", "init", "api", "nightly"):
        assert s[name]["deploy"]["resources"]["limits"]["memory"], name
    for name in ("init", "api", "nightly"):
        env = s[name]["environment"]
        assert not any(k in env for k in ("SOCIALREC_NEO4J_PASSWORD", "SOCIALREC_PSEUDONYM_KEY")), name
        assert env["SOCIALREC_NEO4J_PASSWORD_FILE"].startswith("/run/secrets/")
    assert any("/data/shop-export" in v for v in s["init"]["volumes"])
    assert "tls" in s["proxy"]["profiles"]
    for dockerfile in ("Dockerfile", "nightly/Dockerfile"):
        text = (DOCKER / dockerfile).read_text()
        assert re.search(r"^USER socialrec$", text, flags=re.M), dockerfile
        assert "apt-get install" not in text and "cron -f" not in text, dockerfile  # no root cron daemon
    for script in ("scripts/init.sh", "scripts/serve.sh", "nightly/scheduler.sh", "nightly/run-retrain.sh"):
        assert os.access(DOCKER / script, os.X_OK), script
    crontab = (DOCKER / "nightly" / "crontab").read_text()
    job = [line for line in crontab.splitlines() if line and not line.startswith(("#", "SHELL"))][0]
    assert job.split()[5] == "socialrec" and job.split()[7].startswith("/")  # non-root, absolute path
    unit = (DOCKER / "nightly" / "socialrec-retrain.service").read_text()
    assert "ExecStart=/opt/socialrec/run-retrain" in unit and "User=socialrec" in unit


NASTY = {"SOCIALREC_NEO4J_PASSWORD": "p a$HOME;ss\"w'o`rd\\n$(touch /tmp/pwned-socialrec)",
         "SOCIALREC_PSEUDONYM_KEY": "it's; rm -rf / $x",
         "SOCIALREC_API_KEYS": "storefront:abc def\nadmin:'quoted'"}


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_env_file_is_quoted_so_any_secret_survives_and_nothing_runs(tmp_path, shell):
    env_file = tmp_path / "socialrec.env"
    marker = Path("/tmp/pwned-socialrec")
    marker.unlink(missing_ok=True)
    env = {"PATH": os.environ["PATH"], **NASTY, "OTHER_VAR": "not exported"}
    subprocess.run(["sh", "-c", f". {DOCKER}/scripts/lib.sh && write_env_file {env_file} '^SOCIALREC_'"],
                   env=env, check=True)
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert "OTHER_VAR" not in env_file.read_text()
    out = subprocess.run([shell, "-c", f". {env_file} && python3 -c 'import os, json; print(json.dumps("
                          "{k: v for k, v in os.environ.items() if k.startswith(\"SOCIALREC_\")}))'"],
                         env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == NASTY
    assert not marker.exists()


def test_run_retrain_sources_the_env_file_and_uses_the_configured_cli(tmp_path):
    env_file = tmp_path / "env"
    subprocess.run(["sh", "-c", f". {DOCKER}/scripts/lib.sh && write_env_file {env_file} '^SOCIALREC_'"],
                   env={"PATH": os.environ["PATH"], **NASTY, "SOCIALREC_CLI": "echo"}, check=True)
    out = subprocess.run([str(DOCKER / "nightly" / "run-retrain.sh")], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "SOCIALREC_ENV_FILE": str(env_file)})
    assert out.stdout.split() == ["retrain", "--json", "--no-progress"]


def test_nightly_healthcheck_follows_the_heartbeat_and_the_last_retrain(tmp_path):
    import sys

    check = [sys.executable, str(DOCKER / "scripts" / "healthcheck.py"), "nightly"]
    env = {"PATH": os.environ["PATH"], "SOCIALREC_HOME": str(tmp_path)}
    assert subprocess.run(check, env=env).returncode == 1  # no scheduler yet
    (tmp_path / "retrain").mkdir()
    (tmp_path / "retrain" / "scheduler.heartbeat").touch()
    assert subprocess.run(check, env=env).returncode == 0
    (tmp_path / "retrain" / "status.json").write_text('{"state": "failed"}')
    assert subprocess.run(check, env=env).returncode == 1
