#!/bin/sh
# The original system's maintenance script: `cleanup.sh -a 30` removes temporary files
# older than 24 h, compresses logs older than 30 days, removes orphaned exports and packs,
# and quarantines damaged exports. See docs/cleanup.md.
#
#   cleanup.sh [-a DAYS] [--dry-run]
set -eu
MASCLET=${MASCLET:-masclet}
exec "$MASCLET" cleanup "$@"
