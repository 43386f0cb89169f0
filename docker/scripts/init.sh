#!/bin/sh
# Day one, once: load the dataset and train a first promoted model, so the API is ready at once
# instead of answering 503 until the first nightly retrain. The compose `init` service runs this
# (the api service starts after it exits 0); scripts/day-one.sh runs the same file on the host.
#
# Env: SOCIALREC_DATASET (required), SOCIALREC_HOME, the SOCIALREC_NEO4J_* settings,
# SOCIALREC_TRAIN_ARGS (extra `socialrec train` flags, e.g. "--models popular,als --no-tune").
# Idempotent: a dataset already loaded (marker under $SOCIALREC_HOME/init/) is not loaded again and
# a dataset with a promoted model is not trained again. Exit 0 ok, non-zero = the failed step's code.
set -eu
. "$(dirname "$0")/lib.sh"
dataset=${SOCIALREC_DATASET:?set SOCIALREC_DATASET}
home=${SOCIALREC_HOME:?set SOCIALREC_HOME}
safe=$(printf '%s' "$dataset" | tr ':/' '__')
mkdir -p "$home/init"
if [ -f "$home/init/$safe.etl-done" ]; then
  log "dataset $dataset already loaded"
else
  log "loading $dataset"
  socialrec_cli etl --dataset "$dataset" --json --no-progress
  date -u +%Y-%m-%dT%H:%M:%SZ > "$home/init/$safe.etl-done"
fi
if [ -f "$home/models/$safe/promoted.json" ]; then
  log "a model of $dataset is promoted already"
else
  log "training the first model of $dataset"
  # shellcheck disable=SC2086
  socialrec_cli train --dataset "$dataset" --json --no-progress ${SOCIALREC_TRAIN_ARGS:-}
fi
log "init done"
