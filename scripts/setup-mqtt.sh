#!/usr/bin/env bash
# Installs what the event tests need, only when missing: Debian's mosquitto broker and its clients
# (mosquitto_sub reads back what facerec publishes). The tests start their own broker on a loopback
# port with a config of their own; the package's service is not started here. Without them the MQTT
# tests fail and say to run `make setup-test`.
set -euo pipefail
missing=()
for tool in mosquitto mosquitto_sub mosquitto_pub mosquitto_passwd; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && { echo "setup-mqtt: ready"; exit 0; }
if [ "$(id -u)" != 0 ]; then
  echo "setup-mqtt: ${missing[*]} missing: install Debian's mosquitto and mosquitto-clients (as root)" >&2
  exit 1
fi
echo "setup-mqtt: installing mosquitto and mosquitto-clients (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null
echo "setup-mqtt: ready"
