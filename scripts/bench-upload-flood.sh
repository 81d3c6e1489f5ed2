#!/usr/bin/env bash
# Memory under a flood of uploads (numbers, not pass/fail): starts facerec (SQLite in a temporary
# folder), sends rounds of N concurrent 11 MB uploads (above the 10 MiB image limit, under the 12 MiB
# body limit) with curl, one normal recognition in the middle of each, and prints the answers and
# the server's RSS, measured both ways: idle before any inference, and idle with the models warm
# (after three recognitions); then the peak, right after, and 10 s later.
# Usage: scripts/bench-upload-flood.sh [BINARY] [N=200] [ROUNDS=2]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-$("$root/scripts/target-dir.sh")/release/facerec}"
n="${2:-200}"
rounds="${3:-2}"
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
head -c 11000000 /dev/urandom >"$work/upload.bin"
(cd "$root" && FACEREC_LOG=warn exec "$binary" serve --bind 127.0.0.1:0 \
  --database-url "sqlite://$work/facerec.db" >"$work/stdout" 2>"$work/stderr") &
pid=$!
url=""
for _ in $(seq 1 600); do
  url="$(sed -n 's/^facerec listening on //p' "$work/stdout")"; [ -n "$url" ] && break; sleep 0.1
done
[ -n "$url" ] || { cat "$work/stderr" >&2; exit 1; }
mib() { awk -v k="$1" '$1 == k":" {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
photo="$root/vendor/fixtures/registry/vectron/yaoming.jpg"
recognize() { curl -s -o /dev/null -w "%{http_code}" -F "image=@$photo" "$url/v1/recognize"; }
sleep 2
echo "upload flood: $n concurrent 11 MB uploads per round, $(nproc) cores"
echo "  idle RSS before any inference $(mib VmRSS) MiB"
for _ in 1 2 3; do recognize >/dev/null; done
sleep 2
echo "  idle RSS with the models warm $(mib VmRSS) MiB"
for round in $(seq 1 "$rounds"); do
  seq "$n" | xargs -P "$n" -I{} curl -s -o /dev/null -w "%{http_code}\n" \
    -F "image=@$work/upload.bin" "$url/v1/recognize" >"$work/codes" &
  flood=$!
  sleep 0.5
  middle="$(recognize)"
  wait "$flood"
  answers="$(sort "$work/codes" | uniq -c | awk '{printf "%s x %s, ", $1, $2}')"
  after="$(mib VmRSS)"
  sleep 10
  echo "  round $round: ${answers}a recognition in the middle: $middle; peak RSS $(mib VmHWM) MiB, after $after MiB, 10 s later $(mib VmRSS) MiB"
done
ok="$(recognize)"
echo "  a normal recognition afterwards: $ok"
