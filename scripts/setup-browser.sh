#!/usr/bin/env bash
# Installs what the browser test needs, only when missing: Debian's chromium, and playwright-core
# (pinned in tests/browser/package-lock.json; it drives the system Chromium and downloads no browser).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-browser: chromium is missing; install Debian's 'chromium' package (needs root)" >&2
    exit 1
  fi
  echo "setup-browser: installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi

if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
  command -v npm >/dev/null 2>&1 || { echo "setup-browser: npm is missing (Node.js 20+)" >&2; exit 1; }
  echo "setup-browser: installing playwright-core"
  (cd "$root/tests/browser" && npm ci --no-audit --no-fund --silent)
fi
echo "setup-browser: ready"
