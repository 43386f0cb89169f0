#!/usr/bin/env bash
# Day one on one host, without Docker: the same steps, in the same order, as the services of
# docker/docker-compose.yml, ending with a recommendation served to an API key, readiness true.
#
#   bash scripts/day-one.sh                      # ciao into a local Neo4j, API on 127.0.0.1:8000
#   bash scripts/day-one.sh --dataset filmtrust --port 8001 --neo4j-port 7691 --stop
#
# 1. secrets   docker/scripts/make-secrets.sh -> $SOCIALREC_HOME/secrets/{neo4j_password,pseudonym_key,api_key_hashes}
#              (read by socialrec as SOCIALREC_*_FILE, as the containers do with Docker secrets)
# 2. neo4j     python -m graph.neo4j_server start (Neo4j 5.26.30 + APOC + GDS + Browser), unless
#              SOCIALREC_NEO4J_URI names a running server
# 3. init      docker/scripts/init.sh: ETL + first promoted model (the compose `init` service)
# 4. API key   socialrec apikey create --role storefront; its hash line goes to api_key_hashes
# 5. serve     docker/scripts/serve.sh in the background (the compose `api` service); wait for /ready
# 6. check     GET /v1/users/<id>/recommendations with the key (Authorization: Bearer)
# The API keeps running (pid in $SOCIALREC_HOME/api.pid; stop with `kill $(cat ...)`), unless --stop.
# Prints one JSON summary on stdout: ready, model_version, the recommendation, the key (shown once).
# Env: SOCIALREC_HOME (default ./.socialrec), SOCIALREC_MODE (default production),
# SOCIALREC_TRAIN_ARGS (e.g. "--models popular,als --no-tune"), SOCIALREC_CLI (default: the
# bootstrapped `socialrec`; e.g. "python -m api.cli" in a prepared environment, which also skips
# scripts/bootstrap.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dataset=ciao port=8000 neo4j_port=7687 stop=0 user=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dataset) dataset=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --neo4j-port) neo4j_port=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --stop) stop=1; shift ;;
    *) echo "usage: $0 [--dataset NAME] [--port N] [--neo4j-port N] [--user RAW_ID] [--stop]" >&2; exit 2 ;;
  esac
done
if [[ -z "${SOCIALREC_CLI:-}" ]]; then
  # shellcheck disable=SC1091
  source "$ROOT/scripts/bootstrap.sh"
  export SOCIALREC_CLI=socialrec
fi
export SOCIALREC_HOME="${SOCIALREC_HOME:-$ROOT/.socialrec}" SOCIALREC_MODE="${SOCIALREC_MODE:-production}"
export SOCIALREC_DATASET="$dataset"
if [[ -z "${SOCIALREC_DATA_DIR:-}" && -d "$ROOT/../shared/data" ]]; then export SOCIALREC_DATA_DIR="$ROOT/../shared/data"; fi
mkdir -p "$SOCIALREC_HOME"
say() { printf '[day-one] %s\n' "$*" >&2; }

# 1. secrets
secrets="$(sh "$ROOT/docker/scripts/make-secrets.sh" "$SOCIALREC_HOME/secrets")"
unset SOCIALREC_NEO4J_PASSWORD SOCIALREC_PSEUDONYM_KEY SOCIALREC_API_KEYS
export SOCIALREC_NEO4J_PASSWORD_FILE="$secrets/neo4j_password" SOCIALREC_PSEUDONYM_KEY_FILE="$secrets/pseudonym_key" \
       SOCIALREC_API_KEYS_FILE="$secrets/api_key_hashes"

# 2. neo4j
started_neo4j=0
if [[ -z "${SOCIALREC_NEO4J_URI:-}" ]]; then
  say "starting the local Neo4j on port $neo4j_port"
  SOCIALREC_NEO4J_URI="$(cd "$ROOT" && SOCIALREC_NEO4J_PASSWORD="$(cat "$SOCIALREC_NEO4J_PASSWORD_FILE")" \
    python -m graph.neo4j_server start --home "$SOCIALREC_HOME" --port "$neo4j_port" \
      --heap "${SOCIALREC_NEO4J_HEAP:-2g}" --pagecache "${SOCIALREC_NEO4J_PAGECACHE:-512m}" --timeout 600 | tail -n 1)"
  started_neo4j=1
fi
export SOCIALREC_NEO4J_URI

# 3. init: ETL + first model
(cd "$ROOT" && sh docker/scripts/init.sh)

# 4. an API key for the storefront
key_json="$(cd "$ROOT" && $SOCIALREC_CLI apikey create --role storefront --json)"
key="$(printf '%s' "$key_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
printf '%s' "$key_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hash_line"])' >> "$SOCIALREC_API_KEYS_FILE"

# 5. serve, wait for readiness
say "starting the API on 127.0.0.1:$port"
(cd "$ROOT" && SOCIALREC_BIND=127.0.0.1 SOCIALREC_PORT="$port" nohup sh docker/scripts/serve.sh \
   > "$SOCIALREC_HOME/api.log" 2>&1 & echo $! > "$SOCIALREC_HOME/api.pid")
ready=""
for _ in $(seq 1 300); do
  if ready="$(python3 - "$port" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/ready", timeout=3) as r:
        print(json.dumps(json.load(r)))
except Exception:
    sys.exit(1)
PY
)"; then break; fi
  if ! kill -0 "$(cat "$SOCIALREC_HOME/api.pid")" 2>/dev/null; then say "the API exited; log:"; tail -n 30 "$SOCIALREC_HOME/api.log" >&2; exit 1; fi
  sleep 1
done
[[ -n "$ready" ]] || { say "the API did not become ready in 300 s"; exit 1; }

# 6. a recommendation with the key
rec="$(python3 - "$port" "$user" "$key" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/users/{sys.argv[2]}/recommendations?k=5",
                             headers={"Authorization": f"Bearer {sys.argv[3]}"})
with urllib.request.urlopen(req, timeout=30) as r:
    print(json.dumps(json.load(r)))
PY
)"
python3 - "$ready" "$rec" "$key" "$port" <<'PY'
import json, sys
ready, rec = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"ready": ready.get("status") == "ready", "model_version": ready.get("model_version"),
                  "dataset": ready.get("dataset"), "api": f"http://127.0.0.1:{sys.argv[4]}",
                  "storefront_key": sys.argv[3], "recommendation": rec}))
PY
if [[ $stop == 1 ]]; then
  kill "$(cat "$SOCIALREC_HOME/api.pid")" 2>/dev/null || true
  if [[ $started_neo4j == 1 ]]; then (cd "$ROOT" && python -m graph.neo4j_server stop --home "$SOCIALREC_HOME" >/dev/null); fi
  say "stopped (--stop)"
else
  say "the API keeps running (pid $(cat "$SOCIALREC_HOME/api.pid")); key shown once above"
fi
