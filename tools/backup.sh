#!/bin/sh
# The original system's backup script, as a thin wrapper: `backup.sh -t daily` runs the
# nightly job for that tier (pre-checks, backup, verification, retention, gc when due,
# export when configured, metrics, log, alerts). Settings come from the .env file
# (MASCLET_CONFIG, or ./.env) and the environment; see docs/operations.md.
#
#   backup.sh -t daily|weekly|monthly|yearly [masclet run options...]
set -eu
MASCLET=${MASCLET:-masclet}
usage() {
    echo "usage: $0 -t daily|weekly|monthly|yearly [--no-verify] [--json]" >&2
    exit 2
}
tier=
while [ $# -gt 0 ]; do
    case $1 in
        -t) [ $# -ge 2 ] || usage; tier=$2; shift 2 ;;
        -t*) tier=${1#-t}; shift ;;
        -h|--help) usage ;;
        *) break ;;
    esac
done
[ -n "$tier" ] || usage
exec "$MASCLET" run -t "$tier" "$@"
