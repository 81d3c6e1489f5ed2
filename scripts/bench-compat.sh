#!/usr/bin/env bash
# What the compatible APIs cost over /v1, side by side in one run on one server (release binary,
# SQLite): the same photo recognized through /v1/recognize, CompreFace's /api/v1/recognition/recognize
# and DeepStack's /v1/vision/face/recognize, one request at a time, interleaved, ROUNDS rounds.
#
#   scripts/bench-compat.sh [BINARY] [ROUNDS]   (default target/release/facerec, 40)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-$(scripts/target-dir.sh)/release/facerec}
rounds=${2:-40}
python="$(scripts/test-venv.sh)/bin/python"
photos=vendor/fixtures/registry/vectron
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
FACEREC_LOG=warn "$binary" serve --bind 127.0.0.1:0 --database-url "sqlite://$tmp/f.db" --api-keys bench-key-0123456789 \
  --rate-limit-per-minute 0 --compat-consent-basis "benchmark" >"$tmp/out" 2>"$tmp/err" &
pid=$!
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's/^facerec listening on //p' "$tmp/out"); [ -n "$url" ] && break; sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/err" >&2; exit 1; }
"$python" - "$url" "$photos" "$rounds" <<'PY'
import statistics, sys, time
import requests
url, photos, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
key = {"x-api-key": "bench-key-0123456789"}
yao = open(f"{photos}/yaoming.jpg", "rb").read()
players = open(f"{photos}/players.jpg", "rb").read()
requests.post(f"{url}/api/v1/recognition/faces?subject=Yao", files={"file": yao}, headers=key).raise_for_status()
calls = {
    "/v1/recognize": lambda: requests.post(f"{url}/v1/recognize", files={"image": players}, headers=key),
    "compreface recognize": lambda: requests.post(f"{url}/api/v1/recognition/recognize?prediction_count=1",
                                                  files={"file": players}, headers=key),
    "deepstack recognize": lambda: requests.post(f"{url}/v1/vision/face/recognize",
                                                 files={"image": players}, data={"api_key": "bench-key-0123456789"}),
}
times = {name: [] for name in calls}
for name, call in calls.items():  # warm-up
    call().raise_for_status()
for _ in range(rounds):
    for name, call in calls.items():
        start = time.perf_counter()
        call().raise_for_status()
        times[name].append(time.perf_counter() - start)
base = statistics.median(times["/v1/recognize"])
print(f"players.jpg (22 faces), {rounds} rounds, median per request:")
for name, t in times.items():
    m = statistics.median(t)
    print(f"  {name:22s} {m * 1000:7.1f} ms   {m / base:5.2f}x /v1")
PY
