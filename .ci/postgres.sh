#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the sweep tests (trust auth, 127.0.0.1, a free port).
#   .ci/postgres.sh start DIR   -> initdb + pg_ctl start in DIR, prints the URL
#   .ci/postgres.sh stop DIR    -> stops it and removes DIR
#   .ci/postgres.sh pause DIR   -> stops the server, keeps the cluster (an outage, for tests/faults/)
#   .ci/postgres.sh resume DIR  -> starts it again on the same port
# As root the server runs as user `postgres` (initdb refuses root). Used by .ci/run and by the
# tests' fallback fixture (tests/pg.py) when no XLEXP_TEST_PG_URL is given.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
  done
  command -v "$1"
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    initdb=$(pg_bin initdb) && pg_ctl=$(pg_bin pg_ctl) || { echo "no PostgreSQL binaries (initdb, pg_ctl)" >&2; exit 3; }
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    as_pg "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  pause)
    as_pg "$(pg_bin pg_ctl)" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  resume)
    port=$(cat "$dir/port")
    as_pg "$(pg_bin pg_ctl)" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    ;;
  stop)
    if [ -d "$dir/data" ]; then as_pg "$(pg_bin pg_ctl)" -D "$dir/data" -m fast -w stop >/dev/null || true; fi
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start|stop|pause|resume DIR" >&2; exit 2 ;;
esac
