#!/usr/bin/env bash
# The main job on an embedded default: a local repository, two nightly backups of a
# masclet_imperi-like dump, listed, checked and restored byte-identical.
#
#   bash tools/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "building masclet in release mode (the first build takes a minute or two; later runs are quick)..."
cargo build --release --quiet -p masclet-cli -p masclet-tools
bin=$PWD/target/release
work=${1:-$(mktemp -d /tmp/masclet-demo.XXXXXX)}
mkdir -p "$work"
export MASCLET_REPO=$work/repo MASCLET_PASSWORD_FILE=$work/passphrase
( umask 077; head -c 24 /dev/urandom | base64 > "$MASCLET_PASSWORD_FILE" )
rm -rf "$MASCLET_REPO"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; "$@"; }

echo "work dir: $work (about 75 MB of dumps)"
"$bin/dumpgen" 200000 0 "$work/night0.sql"
"$bin/dumpgen" 200000 1 "$work/night1.sql"
step "$bin/masclet" init
step "$bin/masclet" backup --tag daily --time 2026-11-27T03:00:00Z --stdin --stdin-name masclet_imperi.sql < "$work/night0.sql"
step "$bin/masclet" backup --tag daily --time 2026-11-28T03:00:00Z --stdin --stdin-name masclet_imperi.sql < "$work/night1.sql"
step "$bin/masclet" snapshots
step "$bin/masclet" check --read-data
step "$bin/masclet" restore latest --target "$work/restore"
step cmp "$work/night1.sql" "$work/restore/masclet_imperi.sql"
first=$("$bin/masclet" snapshots --json | grep -o '"id": "[0-9a-f]*"' | head -1 | cut -d'"' -f4)
"$bin/masclet" dump "$first" masclet_imperi.sql | cmp - "$work/night0.sql"
echo
echo "both nights restore byte-identical; repository: $(du -sh "$MASCLET_REPO" | cut -f1) for $(du -ch "$work"/night*.sql | tail -1 | cut -f1) of dumps"
