#!/usr/bin/env bash
# Proves the `make dist` archive runs without the repository or a toolchain: extracts it into an empty
# folder, starts `facerec serve` from another empty folder with a bare environment
# (env -i PATH=/usr/bin:/bin), as an unprivileged user when run as root (as the Dockerfile does), then
# checks healthcheck.sh (the container's health check), /ready, a registration and a recognition
# (the photos come from vendor/fixtures, scripts/setup.sh --with-fixtures), the models' SHA256SUMS and
# the licences. Usage: scripts/dist-test.sh [ARCHIVE] (default: the one `make dist` wrote).
set -euo pipefail
source "$(dirname "$0")/dist-name.sh"
photos="$root/vendor/fixtures/registry/vectron"
[ -f "$archive" ] || { echo "dist-test: $archive is missing: run make dist" >&2; exit 1; }
[ -f "$photos/yaoming.jpg" ] || { echo "dist-test: test photos missing: run make setup-test" >&2; exit 1; }

work="$(mktemp -d /tmp/facerec-dist.XXXXXX)"
chmod 755 "$work"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "dist-test: $*" >&2; [ -f "$work/stderr" ] && cat "$work/stderr" >&2; exit 1; }

mkdir "$work/unpacked" "$work/run"
tar -xzf "$archive" -C "$work/unpacked"
tree="$work/unpacked/$name"
for f in facerec lib/libonnxruntime.so.1.32.0 models/SHA256SUMS README.txt Dockerfile compose.yaml compose.frigate.yaml \
         healthcheck.sh LICENSES/WEIGHTS-LICENSE.txt LICENSES/LICENSE-MIT.txt LICENSES/LICENSE-APACHE.txt \
         LICENSES/onnxruntime-LICENSE.txt LICENSES/onnxruntime-ThirdPartyNotices.txt; do
  [ -e "$tree/$f" ] || fail "$f is not in the archive"
done
grep -q "non-commercial research purposes only" "$tree/LICENSES/WEIGHTS-LICENSE.txt" || fail "the weights' terms are missing"
(cd "$tree/models" && sha256sum --quiet -c SHA256SUMS) || fail "the models do not match SHA256SUMS"

# As root, run as an unprivileged user, as the container does.
as_user=()
if [ "$(id -u)" = 0 ]; then
  id facerec-dist >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin facerec-dist
  chown -R facerec-dist "$work/run"
  as_user=(setpriv --reuid=facerec-dist --regid="$(id -g facerec-dist)" --clear-groups)
fi

# Another empty folder, a bare environment: nothing of the repository (no vendor/) is reachable.
(cd "$work/run" && exec "${as_user[@]}" env -i PATH=/usr/bin:/bin "$tree/facerec" serve \
  --bind 127.0.0.1:0 --compat-consent-basis "dist test" >"$work/stdout" 2>"$work/stderr") &
server_pid=$!
url=""
for _ in $(seq 1 600); do
  url="$(sed -n 's/^facerec listening on //p' "$work/stdout")"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "facerec did not start"
  sleep 0.1
done
[ -n "$url" ] || fail "facerec did not say where it listens"
port="${url##*:}"

FACEREC_HEALTH_PORT="$port" "$tree/healthcheck.sh" || fail "healthcheck.sh did not report ready"
status=$(curl -s -o "$work/ready" -w '%{http_code}' "$url/ready")
[ "$status" = 200 ] || fail "/ready answered $status: $(cat "$work/ready")"
status=$(curl -s -o "$work/registered" -w '%{http_code}' -F image=@"$photos/yaoming.jpg" \
  -F name="Yao Ming" -F consent=true "$url/v1/register")
[ "$status" = 201 ] || fail "registration answered $status: $(cat "$work/registered")"
curl -s -F image=@"$photos/players.jpg" "$url/v1/recognize" >"$work/recognized"
python3 - "$work/recognized" <<'PY' || fail "recognition did not name Yao Ming: $(cat "$work/recognized")"
import json, sys
faces = json.load(open(sys.argv[1]))["faces"]
named = [f["match"]["name"] for f in faces if f["match"]]
sys.exit(0 if named == ["Yao Ming"] and len(faces) > 10 else 1)
PY
[ -f "$work/run/data/facerec.db" ] || fail "the database is not in ./data of the working folder"
echo "dist-test: $archive runs from an empty folder with a bare environment: ready, registers, recognizes"
