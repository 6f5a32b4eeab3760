#!/bin/sh
# The original system's integrity test: `test-backup.sh /backups/daily/latest.tar.gz`
# checks a classic archive (SHA-256 against its name and sidecar, minimum size, gzip and tar
# structure, members) and restores its dump into a temporary database to run the SQL
# checks; the temporary database is always dropped. Without a file it test-restores the
# repository's latest snapshot instead (`masclet verify latest`).
#
#   test-backup.sh [FILE]
set -eu
MASCLET=${MASCLET:-masclet}
case ${1:-} in
    -h|--help) echo "usage: $0 [FILE.tar.gz]" >&2; exit 2 ;;
    "") exec "$MASCLET" verify latest ;;
    *) file=$1; shift; exec "$MASCLET" verify-archive --restore-test "$file" "$@" ;;
esac
