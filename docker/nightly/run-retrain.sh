#!/bin/sh
# One nightly retrain. The lock inside `socialrec retrain` refuses a second concurrent run (exit 1);
# a killed run leaves the promoted version serving, and the next night's run succeeds.
set -eu
[ -f /etc/socialrec.env ] && . /etc/socialrec.env
exec socialrec retrain --json --no-progress ${SOCIALREC_RETRAIN_ARGS:-}
