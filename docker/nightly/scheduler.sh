#!/bin/sh
# The nightly service: run docker/nightly/run-retrain.sh every day at $SOCIALREC_RETRAIN_AT (UTC,
# HH:MM, default 03:15), as the unprivileged user the image runs as (uid 10001, like the api), with
# the container's own environment: no cron, no root, no environment file to write.
# A heartbeat file ($SOCIALREC_HOME/retrain/scheduler.heartbeat) is touched every minute; the
# healthcheck (docker/scripts/healthcheck.py nightly) checks it and the last retrain's state.
set -eu
. "$(dirname "$0")/../scripts/lib.sh" 2>/dev/null || . /app/docker/scripts/lib.sh
at=${SOCIALREC_RETRAIN_AT:-03:15}
home=${SOCIALREC_HOME:?set SOCIALREC_HOME}
mkdir -p "$home/retrain"
last=""
log "nightly retrain scheduled at $at UTC every day"
while :; do
  touch "$home/retrain/scheduler.heartbeat"
  now=$(date -u +%H:%M); today=$(date -u +%F)
  if [ "$now" = "$at" ] && [ "$last" != "$today" ]; then
    last=$today
    log "starting the nightly retrain"
    if "$(dirname "$0")/run-retrain.sh"; then log "retrain finished"; else log "retrain failed (exit $?)"; fi
  fi
  sleep 30
done
