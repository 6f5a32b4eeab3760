#!/usr/bin/env bash
# The main job on an embedded default. With PostgreSQL's binaries (Debian: apt-get install
# postgresql): a throwaway cluster on loopback with a generated masclet_imperi database and
# the original system's .env; two nights of the original `backup.sh -t daily` (the nightly
# job: pre-checks, backup, test restore, retention, gc, the classic .tar.gz export, metrics,
# log), the original `test-backup.sh` on latest.tar.gz, `status.sh`, a `restore --to-db` and
# the HTML report; then the cluster stops. Without them: two nightly backups of a generated
# dump, checked, restored byte-identical and exported.
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

pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
    echo "work dir: $work (a PostgreSQL cluster from $pg_bin on loopback)"
    pgdata=$work/pg
    mkdir -p "$pgdata"
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$pgdata"
        chmod 755 "$work"
        as_pg=(runuser -u postgres --)
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$pgdata" && "${as_pg[@]}" "$pg_bin/initdb" -D "$pgdata/data" -A trust -U postgres -E UTF8 --locale=C > /dev/null)
    (cd "$pgdata" && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata/data" -w -l "$pgdata/data/log" \
        -o "-p $port -k $pgdata/data -c listen_addresses=127.0.0.1" start > /dev/null)
    trap '(cd "$pgdata" && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata/data" -m fast stop > /dev/null)' EXIT
    export DATABASE_URL=postgresql://postgres@127.0.0.1:$port/masclet_imperi PATH=$pg_bin:$PATH
    psql_() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
    psql_ -d postgres -c 'CREATE DATABASE masclet_imperi'
    sub() { sed -e "s/@N@/200000/; s/@SEED@/$1/; s/@APP_PW@/'demo-app'/; s/@RO_PW@/'demo-ro'/" "$2"; }
    echo "loading 200000 animals into masclet_imperi..."
    sub 7 tests/support/pg_schema.sql | psql_ -d masclet_imperi -f -
    # The operated system, as the original spec runs it: its .env, its scripts.
    cat > "$work/masclet.env" <<ENV
BACKUP_ROOT="$work/backups"
RETENTION_DAILY=7
RETENTION_WEEKLY=4
RETENTION_MONTHLY=12
RETENTION_YEARLY=5
MIN_BACKUP_SIZE=1048576  # 1MB
MASCLET_PASSWORD_FILE=$MASCLET_PASSWORD_FILE
DATABASE_URL=$DATABASE_URL
MIN_FREE_SPACE=1G
LOG_DIR=$work/logs
METRICS_FILE=$work/masclet.prom
EXPORT_MIRROR=true
ENV
    export MASCLET_CONFIG=$work/masclet.env MASCLET=$bin/masclet
    unset MASCLET_REPO DATABASE_URL
    step "$bin/masclet" init
    step tools/backup.sh -t daily
    echo "(a night of farm work: 1% of animals and parts change)"
    sub 1 tests/support/pg_night.sql | psql_ -d masclet_imperi -f -
    step tools/backup.sh -t daily
    step "$bin/masclet" snapshots
    step tools/test-backup.sh "$work/backups/daily/latest.tar.gz"
    step tools/status.sh
    step "$bin/masclet" restore latest --to-db masclet_imperi_restored
    step "$bin/masclet" report --html "$work/report.html"
    step tail -n 9 "$work/logs/backup.log"
    MASCLET_REPO=$work/backups/store
    echo
    echo "restored rows: $(psql_ -d masclet_imperi_restored -At -c 'SELECT count(*) FROM animals') animals, $(psql_ -d masclet_imperi_restored -At -c 'SELECT count(*) FROM parts') parts; repository: $(du -sh "$MASCLET_REPO" | cut -f1)"
    exit 0
fi
echo "PostgreSQL's binaries were not found (Debian: apt-get install postgresql, or set PG_BIN):"
echo "showing the file flow instead"
echo "work dir: $work (about 75 MB of dumps)"
"$bin/dumpgen" 200000 0 "$work/night0.sql"
"$bin/dumpgen" 200000 1 "$work/night1.sql"
step "$bin/masclet" init
step "$bin/masclet" backup --tag daily --time 2026-11-27T03:00:00Z --stdin --stdin-name masclet_imperi.sql < "$work/night0.sql"
step "$bin/masclet" backup --tag daily --time 2026-11-28T03:00:00Z --stdin --stdin-name masclet_imperi.sql < "$work/night1.sql"
step "$bin/masclet" snapshots
step "$bin/masclet" check --read-data
step "$bin/masclet" restore latest --target "$work/restore"
step "$bin/masclet" export latest --tier daily --dir "$work/backups"
step "$bin/masclet" verify-archive "$work/backups/daily/latest.tar.gz"
step cmp "$work/night1.sql" "$work/restore/masclet_imperi.sql"
first=$("$bin/masclet" snapshots --json | grep -o '"id": "[0-9a-f]*"' | head -1 | cut -d'"' -f4)
"$bin/masclet" dump "$first" masclet_imperi.sql | cmp - "$work/night0.sql"
echo
echo "both nights restore byte-identical; repository: $(du -sh "$MASCLET_REPO" | cut -f1) for $(du -ch "$work"/night*.sql | tail -1 | cut -f1) of dumps"
