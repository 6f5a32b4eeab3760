#!/usr/bin/env bash
# End-to-end backup figures on a ~1 GB masclet_imperi-like dump: first backup, a second
# backup after one night (~1% of rows changed), restore, next to `cat` on the same file.
#
#   bash tools/bench/e2e.sh [ANIMALS] [WORKDIR]      (default 5400000 animals, about 1 GB)
#
# Prints a markdown table. Wall times are medians of 3 runs (each backup into a fresh copy
# of the repository state it needs); peak RSS from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
animals=${1:-5400000}
work=${2:-$(mktemp -d /tmp/masclet-bench.XXXXXX)}
mkdir -p "$work"
cargo build --release --quiet -p masclet-cli -p masclet-tools
bin=$PWD/target/release
export MASCLET_PASSWORD=bench MASCLET_INSECURE_FAST_KDF=1
[ -f "$work/night0.sql" ] || "$bin/dumpgen" "$animals" 0 "$work/night0.sql"
[ -f "$work/night1.sql" ] || "$bin/dumpgen" "$animals" 1 "$work/night1.sql"
size=$(stat -c %s "$work/night0.sql")

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { # prints "seconds maxrss_kib"
    /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" > /dev/null
    cat "$work/time.out"
}
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
du_b() { du -sb "$1" | cut -f1; }

cat "$work/night0.sql" > /dev/null # warm the page cache for every contender alike
# `cat FILE > /dev/null` may skip the copy altogether (copy_file_range); dd really reads.
cat_s=$(for i in 1 2 3; do timed dd if="$work/night0.sql" of=/dev/null bs=1M status=none; done | cut -d' ' -f1 | median)

first=() second=() restore=() rss=0 grow=0 base=0
for i in 1 2 3; do
    repo=$work/repo$i
    rm -rf "$repo" "$work/out"
    MASCLET_REPO=$repo "$bin/masclet" init > /dev/null
    read -r s m < <(MASCLET_REPO=$repo timed "$bin/masclet" backup --quiet --json --stdin --stdin-name dump.sql < "$work/night0.sql")
    first+=("$s"); [ "$m" -gt "$rss" ] && rss=$m
    base=$(du_b "$repo")
    read -r s m < <(MASCLET_REPO=$repo timed "$bin/masclet" backup --quiet --json --stdin --stdin-name dump.sql < "$work/night1.sql")
    second+=("$s"); [ "$m" -gt "$rss" ] && rss=$m
    grow=$(( $(du_b "$repo") - base ))
    read -r s m < <(MASCLET_REPO=$repo timed "$bin/masclet" restore --quiet --json latest --target "$work/out")
    restore+=("$s")
    cmp "$work/night1.sql" "$work/out/dump.sql"
done
f=$(printf '%s\n' "${first[@]}" | median)
n=$(printf '%s\n' "${second[@]}" | median)
r=$(printf '%s\n' "${restore[@]}" | median)
echo "| input | read (dd, cached) | first backup | nightly backup (1% rows changed) | restore | repository after night 0 | growth on night 1 | peak RSS |"
echo "|---|---|---|---|---|---|---|---|"
echo "| $(awk -v b="$size" 'BEGIN{printf "%.0f MB", b/1e6}') | ${cat_s} s ($(mbps "$size" "$cat_s") MB/s) | ${f} s ($(mbps "$size" "$f") MB/s) | ${n} s ($(mbps "$size" "$n") MB/s) | ${r} s ($(mbps "$size" "$r") MB/s) | $(awk -v b="$base" 'BEGIN{printf "%.1f MB", b/1e6}') | $(awk -v b="$grow" 'BEGIN{printf "%.1f MB", b/1e6}') ($(awk -v g="$grow" -v b="$base" 'BEGIN{printf "%.1f%%", 100*g/b}') of the first) | $((rss / 1024)) MiB |"
rm -rf "$work"/repo* "$work/out"
