#!/bin/sh
# The api service: `socialrec serve` on 0.0.0.0:8000 (SOCIALREC_PORT / SOCIALREC_WORKERS override).
# Readiness is GET /ready (200 once a model is loaded: compose's healthcheck and depends_on use it),
# liveness GET /health (the process answers: what a restart policy / livenessProbe should watch).
set -eu
. "$(dirname "$0")/lib.sh"
exec ${SOCIALREC_CLI:-socialrec} serve --host "${SOCIALREC_BIND:-0.0.0.0}" --port "${SOCIALREC_PORT:-8000}" \
  --workers "${SOCIALREC_WORKERS:-1}"
