#!/bin/sh
# The original system's notifier: `notify.sh KEY [MESSAGE...]` sends an alert
# (backup_failed, space_low, integrity_failed, rotation_failed, backup_ok) through every
# configured channel (NOTIFY_COMMAND, NOTIFY_WEBHOOK_URL, SMTP); `notify.sh --test` sends a
# test message. See docs/notifications.md.
#
#   notify.sh KEY [MESSAGE...] | notify.sh --test
set -eu
MASCLET=${MASCLET:-masclet}
[ $# -ge 1 ] || { echo "usage: $0 KEY [MESSAGE...] | $0 --test" >&2; exit 2; }
exec "$MASCLET" notify "$@"
