#!/bin/sh
# One nightly retrain. The lock inside `socialrec retrain` refuses a second concurrent run (exit 1);
# a killed run leaves the promoted version serving, and the next night's run succeeds.
#
# Environment: inherited (the container's, or systemd's EnvironmentFile), or, for cron on a host,
# the file $SOCIALREC_ENV_FILE (default /etc/socialrec/env) written by
# docker/nightly/install-host.sh with safely quoted `export NAME='value'` lines.
# The CLI is $SOCIALREC_CLI, else the venv's socialrec beside this script's install, else PATH's.
set -eu
env_file=${SOCIALREC_ENV_FILE:-/etc/socialrec/env}
# shellcheck disable=SC1090
[ -r "$env_file" ] && . "$env_file"
if [ -z "${SOCIALREC_CLI:-}" ]; then
  if [ -x /opt/socialrec/venv/bin/socialrec ]; then SOCIALREC_CLI=/opt/socialrec/venv/bin/socialrec; else SOCIALREC_CLI=socialrec; fi
fi
# shellcheck disable=SC2086
exec $SOCIALREC_CLI retrain --json --no-progress ${SOCIALREC_RETRAIN_ARGS:-}
