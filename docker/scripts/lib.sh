# Shared by the scripts of docker/ (sourced, POSIX sh). Not executable on its own.

# sh_quote VALUE: VALUE as one single-quoted POSIX shell word ('...' with ' written as '\'').
# Safe for any byte but NUL: spaces, $, ;, `, ", ', backslashes and newlines stay literal.
sh_quote() {
  printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

# write_env_file FILE PATTERN: write `export NAME='value'` lines for every variable of the current
# environment whose name matches the extended regex PATTERN, atomically and mode 0600.
write_env_file() {
  _file=$1; _pattern=$2
  _tmp="$_file.tmp.$$"
  ( umask 077; : > "$_tmp" )
  for _name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | grep -E "$_pattern" | sort -u); do
    eval "_value=\${$_name}"
    printf 'export %s=%s\n' "$_name" "$(sh_quote "$_value")" >> "$_tmp"
  done
  mv -f "$_tmp" "$_file"
}

# socialrec ARGS...: the CLI (SOCIALREC_CLI overrides, e.g. "python -m api.cli" in a checkout)
socialrec_cli() {
  # shellcheck disable=SC2086
  ${SOCIALREC_CLI:-socialrec} "$@"
}

log() { printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${0##*/}" "$*" >&2; }
