#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests.
#
#   scripts/postgres.sh start DIR [PORT]   bring it up (idempotent), print the env line below
#   scripts/postgres.sh env   DIR          print the env line of the running server
#   scripts/postgres.sh stop  DIR          stop it and delete DIR (idempotent)
#
# Everything lives under DIR (data, socket, log), owned by the `postgres` user when run as root.
# It listens on 127.0.0.1:PORT (a free port picked at random in 10000-19999 without PORT) and on
# a unix socket in DIR. It has a database narwhal_test and a role narwhal (password narwhal) that
# may create databases. The env line is a shell assignment, for `eval "$(scripts/postgres.sh start ...)"`:
#   NARWHAL_TEST_DATABASE_URL=postgres://narwhal:narwhal@127.0.0.1:PORT/narwhal_test
# The Debian package postgresql is installed with apt-get when missing and running as root.
set -euo pipefail

ROLE=narwhal
PASSWORD=narwhal
DATABASE=narwhal_test

die() {
  echo "postgres: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start DIR [PORT] | env DIR | stop DIR" >&2
  exit 2
}

[ $# -ge 2 ] || usage
action=$1
base=$(realpath -m "$2")
data=$base/data

find_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && bin=$dir
  done
  [ -n "${bin:-}" ]
}

# Runs a PostgreSQL binary as the owner of DIR (postgres when we are root: initdb refuses root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

psql_() { as_owner timeout 20 "$bin/psql" -h "$base" -p "$(cat "$base/port")" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

print_env() {
  echo "NARWHAL_TEST_DATABASE_URL=postgres://$ROLE:$PASSWORD@127.0.0.1:$(cat "$base/port")/$DATABASE"
}

running() {
  [ -f "$data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

# Below Linux's ephemeral range (32768 and up), where a client connection may hold any port, and
# below ceph-rgw.sh's 20000-31999; one nothing listens on.
pick_port() {
  local port
  for _ in $(seq 50); do
    port=$((10000 + RANDOM % 10000))
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q . || { echo "$port"; return; }
  done
  die "no free port found in 10000-19999"
}

start() {
  if ! find_bin; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed: run as root on Debian, or apt-get install postgresql"
    echo "postgres: installing postgresql" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    find_bin || die "no pg_ctl under /usr/lib/postgresql/*/bin after installing postgresql"
  fi
  mkdir -p "$base"
  if [ ! -f "$base/port" ]; then
    echo "${1:-$(pick_port)}" >"$base/port"
  fi
  local port
  port=$(cat "$base/port")
  [ "$(id -u)" = 0 ] && chown postgres: "$base"
  if running; then
    print_env
    return
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$base/initdb.log" 2>&1 ||
      die "initdb failed: $(tail -5 "$base/initdb.log")"
    # Password authentication over TCP, as a real deployment would use; trust on the socket.
    echo "host all all 127.0.0.1/32 scram-sha-256" >"$data/pg_hba.conf"
    echo "local all all trust" >>"$data/pg_hba.conf"
  fi
  # fsync off: a test server, and the crash tests kill Narwhal, not PostgreSQL.
  as_owner "$bin/pg_ctl" -D "$data" -l "$base/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $base -c fsync=off -c max_connections=200" start >/dev/null ||
    die "server did not start: $(tail -5 "$base/server.log")"
  if [ "$(psql_ -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_ -d postgres -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
  fi
  # The tests drop their databases WITH (FORCE), which must also end an autovacuum worker that is
  # in one at that moment: a process of no role of ours, which only pg_signal_backend may signal.
  psql_ -d postgres -c "GRANT pg_signal_backend TO $ROLE"
  if [ "$(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
    psql_ -d postgres -c "CREATE DATABASE $DATABASE OWNER $ROLE"
  fi
  print_env
}

stop() {
  if find_bin && running; then
    as_owner "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null || die "server did not stop"
  fi
  rm -rf "$base"
}

case $action in
start) start "${3:-}" ;;
env)
  [ -f "$base/port" ] || die "no server under $base"
  print_env
  ;;
stop) stop ;;
*) usage ;;
esac
