#!/usr/bin/env bash
# Installs what the container test needs, only when missing: Debian's podman, runc (crun refuses
# these machines' hybrid cgroups) and debootstrap (the base image is made from the apt mirror). As
# root only; elsewhere, or when apt cannot install them, scripts/container-test.sh reports SKIPPED.
set -uo pipefail
missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && { echo "setup-container: ready"; exit 0; }
if [ "$(id -u)" != 0 ]; then
  echo "setup-container: ${missing[*]} missing and not root: the container test will be skipped"
  exit 0
fi
echo "setup-container: installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
if apt-get install -y -qq podman runc debootstrap >/dev/null; then
  echo "setup-container: ready"
else
  echo "setup-container: could not install ${missing[*]}: the container test will be skipped"
fi
