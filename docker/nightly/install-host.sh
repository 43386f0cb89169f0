#!/bin/sh
# Install the nightly retrain on a host without Docker (run as root from the repository root):
#   user `socialrec`, a venv in /opt/socialrec/venv with this checkout installed, the environment
#   file /etc/socialrec/env (mode 0600, owner socialrec; safely quoted, written from the SOCIALREC_*
#   variables of the calling shell), SOCIALREC_HOME owned by socialrec, and the systemd timer
#   (or, with --cron, /etc/cron.d/socialrec-nightly with absolute paths).
#
#   sudo -E sh docker/nightly/install-host.sh [--cron]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/docker/scripts/lib.sh"
[ "$(id -u)" = 0 ] || { echo "run as root (sudo -E)" >&2; exit 2; }
: "${SOCIALREC_HOME:=/var/lib/socialrec}"; export SOCIALREC_HOME
id socialrec >/dev/null 2>&1 || useradd --system --home-dir "$SOCIALREC_HOME" --shell /usr/sbin/nologin socialrec
install -d -o socialrec -g socialrec -m 0750 "$SOCIALREC_HOME"
install -d -m 0755 /opt/socialrec /etc/socialrec
[ -x /opt/socialrec/venv/bin/python ] || python3.11 -m venv /opt/socialrec/venv
/opt/socialrec/venv/bin/pip install --quiet "$root"
write_env_file /etc/socialrec/env '^(SOCIALREC_|OPENBLAS_)'
chown socialrec:socialrec /etc/socialrec/env && chmod 0600 /etc/socialrec/env
install -m 0755 "$root/docker/nightly/run-retrain.sh" /opt/socialrec/run-retrain
if [ "${1:-}" = "--cron" ]; then
  install -m 0644 "$root/docker/nightly/crontab" /etc/cron.d/socialrec-nightly
else
  install -m 0644 "$root/docker/nightly/socialrec-retrain.service" "$root/docker/nightly/socialrec-retrain.timer" /etc/systemd/system/
  systemctl daemon-reload && systemctl enable --now socialrec-retrain.timer
fi
echo "installed: /opt/socialrec/run-retrain, env /etc/socialrec/env" >&2
