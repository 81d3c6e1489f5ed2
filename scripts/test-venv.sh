#!/usr/bin/env bash
# Creates (once) the Python virtual environment that the API tests drive facerec with, from PyPI,
# with the pinned packages of tests/contract/requirements.txt. Prints its path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${FACEREC_TEST_VENV:-$root/target/test-venv}"
requirements="$root/tests/contract/requirements.txt"
stamp="$venv/.requirements"
if [ ! -f "$stamp" ] || ! cmp -s "$requirements" "$stamp"; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get install -y -q python3-venv >&2 || { apt-get update -q >&2 && apt-get install -y -q python3-venv >&2; }
    else
      echo "test-venv: Python's venv module is missing: install python3-venv" >&2; exit 1
    fi
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv"
