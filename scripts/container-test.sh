#!/usr/bin/env bash
# Builds the container `make dist` ships (its Dockerfile, on its own tree) with Podman and runs it as
# its users would: as its non-root user, with a key and a volume, answering on a published port.
# Checks /ready, the image's health check, a registration and a recognition, and that the data
# survives a new container on the same volume. No image registry is reachable here, so the base is a
# Debian bookworm made with `debootstrap --variant=minbase` from the machine's apt mirror and
# `podman import`ed (kept between runs as localhost/facerec-test-base:bookworm); the Dockerfile's
# base stays debian:bookworm-slim by default (build argument BASE).
# Where Podman cannot run, it says so and stops with the word SKIPPED (exit 0): nothing was tested.
# Usage: scripts/container-test.sh [ARCHIVE] (default: the one `make dist` wrote).
set -euo pipefail
source "$(dirname "$0")/dist-name.sh"
photos="$root/vendor/fixtures/registry/vectron"
base=localhost/facerec-test-base:bookworm
image=localhost/facerec-test:latest
skip() { echo "container-test: SKIPPED: $*"; exit 0; }
[ -f "$archive" ] || { echo "container-test: $archive is missing: run make dist" >&2; exit 1; }
command -v podman >/dev/null || skip "podman is not installed (apt-get install podman runc debootstrap)"
[ "$(id -u)" = 0 ] || skip "needs root (rootful podman, debootstrap)"

work="$(mktemp -d /tmp/facerec-container.XXXXXX)"
tag="facerec-test-$$"
cleanup() {
  podman rm -f "$tag-1" "$tag-2" >/dev/null 2>&1 || true
  podman volume rm -f "$tag" >/dev/null 2>&1 || true
  # Each build leaves a 400 MB image; only the base is worth keeping between runs.
  podman rmi -f "$image" >/dev/null 2>&1 || true
  podman image prune -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# What runs here: runc (crun refuses this machine's hybrid cgroups), cgroupfs, no default ulimits.
cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF="$work/containers.conf"
podman info >/dev/null 2>"$work/info.err" || skip "podman cannot run here: $(tail -n1 "$work/info.err")"

if ! podman image exists "$base"; then
  command -v debootstrap >/dev/null || skip "debootstrap is not installed"
  mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
  debootstrap --variant=minbase bookworm "$work/rootfs" "${mirror:-http://deb.debian.org/debian}" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; skip "debootstrap failed"; }
  tar -C "$work/rootfs" -c . | podman import - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi

mkdir "$work/tree"
tar -xzf "$archive" -C "$work/tree"
podman build --quiet --format docker --build-arg BASE="$base" -t "$image" "$work/tree/$name" >/dev/null

key="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
podman volume create "$tag" >/dev/null
start() {
  # --health-interval disable: no systemd timer here; the check itself runs below.
  podman run -d --name "$1" --health-interval disable -p "127.0.0.1:$port:8000" -v "$tag:/data" \
    -e FACEREC_API_KEYS="$key" -e FACEREC_COMPAT_CONSENT_BASIS="container test" "$image" >/dev/null
  for _ in $(seq 1 120); do
    curl -fsS "$url/ready" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  podman logs "$1" >&2
  echo "container-test: $1 did not become ready on $url" >&2
  exit 1
}
fail() { echo "container-test: $*" >&2; exit 1; }

start "$tag-1"
[ "$(podman exec "$tag-1" id -u)" != 0 ] || fail "the container runs as root"
podman healthcheck run "$tag-1" >/dev/null || fail "the image's health check does not pass"
curl -fsS -H "x-api-key: $key" -F image=@"$photos/yaoming.jpg" -F name="Yao Ming" -F consent=true \
  "$url/v1/register" >/dev/null || fail "registration failed"
recognized() {
  curl -fsS -H "x-api-key: $key" -F image=@"$photos/players.jpg" "$url/v1/recognize" \
    | python3 -c 'import json, sys; names = [f["match"]["name"] for f in json.load(sys.stdin)["faces"] if f["match"]]; sys.exit(0 if "Yao Ming" in names else 1)'
}
recognized || fail "Yao Ming is not recognized in players.jpg"
podman rm -f "$tag-1" >/dev/null

# A new container on the same volume: the registration is still there.
start "$tag-2"
recognized || fail "the data did not survive a new container on the same volume"
echo "container-test: ok (image built from the dist tree on $base; non-root; /ready, health check, register, recognize, data kept on the volume)"
