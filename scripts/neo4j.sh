#!/usr/bin/env bash
# Start/stop/status of the local Neo4j server (Neo4j Community 5.26 + APOC + GDS from Maven Central).
# A thin wrapper over `python -m graph.neo4j_server`, usable from .ci/run:
#
#   SOCIALREC_HOME=/tmp/socialrec SOCIALREC_NEO4J_PASSWORD=... scripts/neo4j.sh start   # prints the Bolt URI
#   scripts/neo4j.sh status [--json]
#   scripts/neo4j.sh stop
#   scripts/neo4j.sh shell -- --format plain "MATCH (n) RETURN count(n)"     # cypher-shell (5.26.30)
#   scripts/neo4j.sh dump --to DIR | load --from DIR                         # neo4j-admin, server stopped
#
# Needs Java 17 (or 21) and Maven on PATH; the first start downloads the jars once (~140 MB into ~/.m2).
# Extra flags go through: --port, --heap, --pagecache, --timeout, --json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
case "${1:-}" in
  start|stop|status|shell|dump|load) ;;
  *) echo "usage: $0 start|stop|status|shell|dump|load [--json] [--port N] [--heap 1g] [--pagecache 512m] [-- cypher-shell args]" >&2; exit 2 ;;
esac
cd "$root"
exec "$PYTHON" -m graph.neo4j_server "$@"
