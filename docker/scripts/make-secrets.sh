#!/bin/sh
# Create the secret files docker-compose.yml (and scripts/day-one.sh) read, once: a random Neo4j
# password and pseudonym key, and an empty API-key hash file. Existing files are kept (a new
# pseudonym key would orphan every stored pseudonym). Files are mode 0600.
#   sh docker/scripts/make-secrets.sh DIR
set -eu
dir=${1:?usage: make-secrets.sh DIR}
umask 077
mkdir -p "$dir"
rand() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
[ -s "$dir/neo4j_password" ] || rand > "$dir/neo4j_password"
[ -s "$dir/pseudonym_key" ] || rand > "$dir/pseudonym_key"
[ -e "$dir/api_key_hashes" ] || : > "$dir/api_key_hashes"
echo "$dir"
