#!/usr/bin/env bash
# The README's main job on a fresh machine: build the environment, then `socialrec demo` on ciao
# with the embedded store. Datasets are read from $SOCIALREC_DATA_DIR when set (else from
# ../shared/data when that folder exists beside the checkout), and downloaded otherwise.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/bootstrap.sh"
if [ -z "${SOCIALREC_DATA_DIR:-}" ] && [ -d "$ROOT/../shared/data" ]; then
  export SOCIALREC_DATA_DIR="$ROOT/../shared/data"
  echo "[demo] reading datasets from $SOCIALREC_DATA_DIR" >&2
fi
unset SOCIALREC_NEO4J_URI  # the main job runs on the embedded store
exec socialrec demo "$@"
