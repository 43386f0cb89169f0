#!/bin/bash
# NEO4J_AUTH from the Docker secret holding only the password (the same file socialrec reads as
# SOCIALREC_NEO4J_PASSWORD_FILE), then Neo4j's own entrypoint.
set -euo pipefail
if [[ -n "${NEO4J_PASSWORD_FILE:-}" ]]; then
  NEO4J_AUTH="neo4j/$(cat "$NEO4J_PASSWORD_FILE")"
  export NEO4J_AUTH
fi
exec /startup/docker-entrypoint.sh "$@"
