#!/bin/sh
# The original system's status script: newest snapshot per tier, last run and its metrics,
# last verified restore, repository and disk use, locks and active alerts. Exits 1 when
# unhealthy (no daily backup in 26 h, a failed verification, space low), so monitoring can
# call it. See docs/status.md.
#
#   status.sh [--json]
set -eu
MASCLET=${MASCLET:-masclet}
case ${1:-} in
    --json) exec "$MASCLET" --json status ;;
    "") exec "$MASCLET" status ;;
    *) echo "usage: $0 [--json]" >&2; exit 2 ;;
esac
