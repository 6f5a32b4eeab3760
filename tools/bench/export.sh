#!/usr/bin/env bash
# `masclet export` beside `pigz -p 2` on the full-size dump (the one tools/bench/e2e.sh
# backs up, ~1 GB from dumpgen): the snapshot is exported as a classic .tar.gz, and the same
# bytes, restored to disk, are put through `tar -c | pigz -p 2` (level 6, pigz's default and
# the export's). One run each; wall time and peak RSS from GNU time.
#
#   bash tools/bench/export.sh [ANIMALS] [WORKDIR]      (default 5400000 animals, about 1 GB)
#
# Prints a markdown table. Needs pigz (apt-get install pigz).
set -euo pipefail
cd "$(dirname "$0")/../.."
animals=${1:-5400000}
work=${2:-$(mktemp -d /tmp/masclet-export-bench.XXXXXX)}
mkdir -p "$work"
command -v pigz > /dev/null || { echo "pigz is missing: apt-get install pigz" >&2; exit 1; }
cargo build --release --quiet -p masclet-cli -p masclet-tools
bin=$PWD/target/release
export MASCLET_PASSWORD=bench MASCLET_INSECURE_FAST_KDF=1 MASCLET_REPO=$work/repo
[ -f "$work/night0.sql" ] || "$bin/dumpgen" "$animals" 0 "$work/night0.sql"
size=$(stat -c %s "$work/night0.sql")

timed() { # prints "seconds maxrss_kib"
    /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" > /dev/null
    cat "$work/time.out"
}
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

rm -rf "$MASCLET_REPO" "$work/restored" "$work/classic" "$work/pigz.tar.gz"
"$bin/masclet" init > /dev/null
"$bin/masclet" backup --quiet --stdin --stdin-name masclet_imperi.sql < "$work/night0.sql" > /dev/null
"$bin/masclet" restore --quiet latest --target "$work/restored" > /dev/null 2>&1
cmp "$work/night0.sql" "$work/restored/masclet_imperi.sql"
sync
# Warm the page cache alike for both: the repository for masclet, the restored file for pigz.
cat "$MASCLET_REPO"/packs/*/* "$work/restored/masclet_imperi.sql" > /dev/null

read -r ps pm < <(timed bash -c "tar -cf - -C '$work/restored' . | pigz -p 2 > '$work/pigz.tar.gz'")
read -r ms mm < <(timed "$bin/masclet" export --quiet latest --tier daily --dir "$work/classic")
out=$(ls "$work"/classic/daily/masclet_daily_*.tar.gz)
(cd "$work/classic/daily" && sha256sum -c --quiet "$(basename "$out").sha256")
gzip -t "$out"
# The archive holds the dump byte for byte (GNU tar reads it).
tar -xzOf "$out" masclet_imperi.sql | cmp - "$work/night0.sql"
psize=$(stat -c %s "$work/pigz.tar.gz")
msize=$(stat -c %s "$out")

echo "| $(mb "$size") dump, one run | wall | throughput | peak RSS | output |"
echo "|---|---|---|---|---|"
echo "| \`tar -c \\| pigz -p 2\` of the restored file | ${ps} s | $(mbps "$size" "$ps") MB/s | $((pm / 1024)) MiB | $(mb "$psize") |"
echo "| \`masclet export\` from the repository | ${ms} s | $(mbps "$size" "$ms") MB/s | $((mm / 1024)) MiB | $(mb "$msize") |"
rm -rf "$MASCLET_REPO" "$work/restored" "$work/classic" "$work/pigz.tar.gz"
