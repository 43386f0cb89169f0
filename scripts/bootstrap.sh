#!/usr/bin/env bash
# Create (once) and activate the Python environment of socialrec.
#
# Usage: source scripts/bootstrap.sh
#
# The virtual environment lives in a cache keyed by the hash of pyproject.toml
# (${SOCIALREC_CACHE:-~/.cache/socialrec}/venv-<hash>), so CI and repeated runs reuse it instead of
# downloading torch (~3 GB) again; a fresh machine builds it from nothing (pip's own cache helps
# when pyproject.toml changes). The package itself is (re)installed in editable mode from this
# checkout on every call, which takes a second.
_sr_saved_opts="$(set +o)"  # restored at the end: sourcing this must not change the caller's shell
set -euo pipefail
SOCIALREC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOCIALREC_CACHE="${SOCIALREC_CACHE:-$HOME/.cache/socialrec}"
PYTHON_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON_BIN" - <<'PY' || { echo "socialrec needs Python 3.11 (found $("$PYTHON_BIN" --version))" >&2; eval "$_sr_saved_opts"; return 2 2>/dev/null || exit 2; }
import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
PY
mkdir -p "$SOCIALREC_CACHE"
# key: the dependency spec only (requires-python, dependencies, extras), not the whole file
key="$("$PYTHON_BIN" - "$SOCIALREC_ROOT/pyproject.toml" <<'PY'
import hashlib, json, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
spec = {k: project.get(k) for k in ("requires-python", "dependencies", "optional-dependencies")}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16])
PY
)"
VENV="$SOCIALREC_CACHE/venv-$key"
(
  flock 9
  if [ ! -f "$VENV/.complete" ]; then
    echo "[bootstrap] building the Python environment in $VENV (first run: downloads torch, a few minutes)" >&2
    rm -rf "$VENV"
    "$PYTHON_BIN" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip setuptools wheel
    "$VENV/bin/pip" install --quiet --progress-bar off -e "$SOCIALREC_ROOT[dev]"
    touch "$VENV/.complete"
  fi
  touch "$VENV/.last-used"
  # drop environments of other dependency specs that nobody used for 3 days
  for old in "$SOCIALREC_CACHE"/venv-*; do
    [ "$old" = "$VENV" ] && continue
    [ -f "$old/.last-used" ] && [ -z "$(find "$old/.last-used" -mtime +3 2>/dev/null)" ] && continue
    [ -f "$old/.complete" ] && [ ! -f "$old/.last-used" ] && [ -z "$(find "$old/.complete" -mtime +3 2>/dev/null)" ] && continue
    rm -rf "$old"
  done
) 9>"$SOCIALREC_CACHE/.venv.lock"
if ! _sr_out="$("$VENV/bin/pip" install --quiet --no-deps --no-build-isolation -e "$SOCIALREC_ROOT" 2>&1)"; then
  echo "$_sr_out" >&2
  eval "$_sr_saved_opts"; return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export SOCIALREC_VENV="$VENV"
echo "[bootstrap] using $VENV ($(python --version))" >&2
eval "$_sr_saved_opts"
unset _sr_saved_opts _sr_out
