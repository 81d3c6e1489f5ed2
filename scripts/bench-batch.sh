#!/usr/bin/env bash
# Batch work on one core and on all of them, side by side in one run: `facerec analyze` over the
# first 120 photos of ../shared/faces/images (the registry photos where it is absent), and
# `facerec enroll` of the whole folder into a fresh SQLite database.
#
#   scripts/bench-batch.sh [BINARY]        (default target/release/facerec)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/facerec}
cores=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -d ../shared/faces/images ]]; then
    find ../shared/faces/images -type f | sort | head -n 120 >"$tmp/photos"
    people=../shared/faces/images
else
    find vendor/fixtures/registry -type f -name '*.jpg' | sort >"$tmp/photos"
    people=""
fi
n=$(wc -l <"$tmp/photos")

seconds() { local start=$EPOCHREALTIME; "$@" >/dev/null 2>&1 || true; echo "$EPOCHREALTIME - $start" | bc; }

echo "batch work, $cores cores ($binary)"
for workers in 1 "$cores"; do
    t=$(seconds "$binary" analyze --json --workers "$workers" $(cat "$tmp/photos"))
    printf '  analyze %3d photos, %d worker(s): %6.2f s  (%.1f photos/s)\n' "$n" "$workers" "$t" "$(echo "$n / $t" | bc -l)"
done
if [[ -n $people ]]; then
    total=$(find "$people" -type f | wc -l)
    for workers in 1 "$cores"; do
        rm -f "$tmp"/facerec.db*
        t=$(seconds "$binary" enroll "$people" --consent --workers "$workers" \
            --database-url "sqlite://$tmp/facerec.db")
        printf '  enroll  %3d photos, %d worker(s): %6.2f s  (%.1f photos/s)\n' "$total" "$workers" "$t" "$(echo "$total / $t" | bc -l)"
    done
fi
