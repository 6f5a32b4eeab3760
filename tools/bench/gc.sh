#!/usr/bin/env bash
# forget + gc on a repository holding a long history of a dump, next to restic's
# `forget --prune` on the same history in the same run.
#
#   bash tools/bench/gc.sh [ANIMALS] [NIGHTS] [WORKDIR]    (defaults: 60000 animals ≈ 11 MB, 300 nights)
#
# Both tools back up the same nights (one per day, ending 2026-11-28), then apply the
# original design's policy (7 daily, 4 weekly, 12 monthly, 5 yearly) and reclaim space.
# Prints a markdown table: wall time and peak RSS of the forget+gc step, repository sizes.
set -euo pipefail
cd "$(dirname "$0")/../.."
animals=${1:-60000}
nights=${2:-300}
work=${3:-$(mktemp -d /tmp/masclet-gcbench.XXXXXX)}
mkdir -p "$work"
cargo build --release --quiet -p masclet-cli -p masclet-tools
bin=$PWD/target/release
command -v restic > /dev/null || { echo "restic not installed (apt-get install restic)" >&2; exit 1; }
export MASCLET_REPO=$work/masclet MASCLET_PASSWORD=bench MASCLET_INSECURE_FAST_KDF=1
export RESTIC_REPOSITORY=$work/restic RESTIC_PASSWORD=bench
rm -rf "$MASCLET_REPO" "$RESTIC_REPOSITORY"
"$bin/masclet" init > /dev/null
restic init --quiet > /dev/null

cat > "$work/night.sh" <<SH
#!/usr/bin/env bash
set -euo pipefail
"$bin/masclet" backup --quiet --json --time "\$NIGHT_TIME" --stdin --stdin-name dump.sql < "\$NIGHT_FILE" > /dev/null
restic backup --quiet --stdin --stdin-filename dump.sql --time "\$NIGHT_TIME_RESTIC" < "\$NIGHT_FILE" > /dev/null
SH
chmod +x "$work/night.sh"
start=$(date +%s)
"$bin/history" "$animals" "$nights" 2026-11-28 "$work/night.sh"
echo "backed up $nights nights with both tools in $(( $(date +%s) - start )) s" >&2

m_before=$(du -sb "$MASCLET_REPO" | cut -f1)
r_before=$(du -sb "$RESTIC_REPOSITORY" | cut -f1)
policy=(--keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 5)
/usr/bin/time -f '%e %M' -o "$work/m.time" env TZ=UTC "$bin/masclet" forget --quiet --prune "${policy[@]}" > "$work/m.out"
/usr/bin/time -f '%e %M' -o "$work/r.time" env TZ=UTC restic forget --quiet --prune "${policy[@]}" > "$work/r.out"
read -r m_s m_rss < "$work/m.time"
read -r r_s r_rss < "$work/r.time"
m_after=$(du -sb "$MASCLET_REPO" | cut -f1)
r_after=$(du -sb "$RESTIC_REPOSITORY" | cut -f1)
m_kept=$("$bin/masclet" snapshots --json | grep -c '"short_id"')
r_kept=$(restic snapshots --json | grep -o '"short_id"' | wc -l)
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
dump_mb=$(mb "$(stat -c %s "${TMPDIR:-/tmp}"/masclet-history-*.sql 2>/dev/null || echo 0)")
echo "| tool | snapshots before → kept | repository before | forget + gc wall | peak RSS | repository after |"
echo "|---|---|---|---|---|---|"
echo "| masclet | $nights → $m_kept | $(mb "$m_before") | ${m_s} s | $((m_rss / 1024)) MiB | $(mb "$m_after") |"
echo "| restic $(restic version | cut -d' ' -f2) | $nights → $r_kept | $(mb "$r_before") | ${r_s} s | $((r_rss / 1024)) MiB | $(mb "$r_after") |"
awk -v m="$m_s" -v r="$r_s" 'BEGIN { printf "\nforget+gc time ratio masclet/restic: %.2f\n", m / r }'
"$bin/masclet" check --quiet > /dev/null && echo "masclet check: ok" >&2
