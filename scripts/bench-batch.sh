#!/usr/bin/env bash
# Batch work on one core and on all of them, side by side in one run: `facerec analyze` over the
# first 120 photos of ../shared/faces/images (the registry photos where it is absent), and
# `facerec enroll` of the whole folder into a fresh SQLite database.
#
#   scripts/bench-batch.sh [BINARY]        (default target/release/facerec)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-$(scripts/target-dir.sh)/release/facerec}
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
# InsightFace itself, when a Python with the package is named (see docs/BENCHMARKS.md for the venv).
if [[ -n ${INSIGHTFACE_PYTHON:-} ]]; then
    read -r load analysis total faces < <("$INSIGHTFACE_PYTHON" scripts/insightface-bench.py vendor/models "$tmp/photos" 2>/dev/null)
    printf '  insightface %3d photos (all cores): %6.2f s analysis, %6.2f s with model loading\n' "$n" "$analysis" "$total"
fi
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
    # The same registrations through the HTTP server (its default workers), four uploads at a time.
    rm -f "$tmp"/facerec.db*
    "$binary" serve --bind 127.0.0.1:0 --rate-limit-per-minute 0 --database-url "sqlite://$tmp/facerec.db" \
        >"$tmp/serve.log" 2>&1 &
    server=$!
    until url=$(grep -o 'http://[0-9.:]*' "$tmp/serve.log" | head -n 1) && [[ -n $url ]]; do sleep 0.2; done
    register() { curl -s -o /dev/null -F "image=@$1" -F "name=$(basename "$(dirname "$1")")" -F consent=true "$2/v1/register"; }
    export -f register
    t=$(seconds bash -c "find '$people' -type f | xargs -P 4 -I{} bash -c 'register {} $url'")
    kill "$server"; wait "$server" 2>/dev/null || true
    printf '  HTTP /v1/register %3d photos, 4 clients: %6.2f s  (%.1f photos/s)\n' "$total" "$t" "$(echo "$total / $t" | bc -l)"
fi
