#!/usr/bin/env bash
# A single-node Ceph cluster (one mon, one memstore OSD) with a RADOS Gateway serving S3, for tests.
#
#   scripts/ceph-rgw.sh start BASE [PORT]   bring it up (idempotent), print the env lines below
#   scripts/ceph-rgw.sh env   BASE          print the env lines of the running cluster
#   scripts/ceph-rgw.sh stop  BASE          stop it and delete its data (idempotent)
#
# Everything lives under BASE (config, data, logs, PIDs). It listens on 127.0.0.1 ports PORT (S3)
# to PORT+19 (the mon, and the OSD, which binds eight), so clusters on different ports can run side
# by side; without PORT, a free range is picked at random in 20000-31999. The env lines are shell assignments, for `eval "$(scripts/ceph-rgw.sh start ...)"`:
#   NARWHAL_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
# Missing Debian packages are installed with apt-get when running as root; otherwise it fails.
# Facts and pitfalls: shared/design/ceph-rgw.md. Objects live in RAM (memstore, 1 GiB by default,
# NARWHAL_TEST_S3_MEMSTORE_BYTES to change): this is a test server, not a place for data.
set -euo pipefail

ACCESS_KEY=narwhal-test-access
SECRET_KEY=narwhal-test-secret-0123456789
PACKAGES=(ceph-mon ceph-osd radosgw ceph-common)

die() {
  echo "ceph-rgw: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start BASE [PORT] | env BASE | stop BASE" >&2
  exit 2
}

[ $# -ge 2 ] || usage
action=$1
base=$(realpath -m "$2")
conf=$base/ceph.conf

ceph_() { timeout 20 ceph -c "$conf" "$@"; }

print_env() {
  local port
  port=$(cat "$base/port")
  echo "NARWHAL_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
  echo "AWS_ACCESS_KEY_ID=$ACCESS_KEY"
  echo "AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
  echo "AWS_REGION=us-east-1"
}

# True when every daemon of this base runs and the gateway answers.
running() {
  [ -f "$base/port" ] || return 1
  local name
  for name in mon.a osd.0 client.rgw.local; do
    [ -f "$base/run/$name.pid" ] && kill -0 "$(cat "$base/run/$name.pid")" 2>/dev/null || return 1
  done
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$(cat "$base/port")/"
}

# Retries a command every 0.1 s for at most $1 seconds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what did not happen within ${seconds}s; logs are in $base/log"
    sleep 0.1
  done
}

stop_daemons() {
  local name pid
  for name in client.rgw.local osd.0 mon.a; do
    [ -f "$base/run/$name.pid" ] || continue
    pid=$(cat "$base/run/$name.pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$base/run/$name.pid"
  done
}

install_packages() {
  local missing=()
  command -v ceph-mon >/dev/null || missing+=(ceph-mon)
  command -v ceph-osd >/dev/null || missing+=(ceph-osd)
  command -v radosgw >/dev/null || missing+=(radosgw)
  { command -v ceph >/dev/null && command -v monmaptool >/dev/null && command -v radosgw-admin >/dev/null; } || missing+=(ceph-common)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "Ceph is not installed (missing ${missing[*]}); run as root on Debian so this script can install it, or: apt-get install --no-install-recommends ${PACKAGES[*]} curl"
  fi
  echo "ceph-rgw: installing ${missing[*]}" >&2
  timeout 300 apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    die "apt-get install ${missing[*]} failed"
}

write_conf() {
  local port=$1 fsid=$2
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$((port + 1)),v1:127.0.0.1:$((port + 2))]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = $base/empty.keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
# Every mon write waits this long; RGW makes about ten on first use.
paxos_propose_interval = 0.05
ms_bind_port_min = $((port + 3))
ms_bind_port_max = $((port + 19))
run_dir = $base/run
admin_socket = $base/run/\$name.asok
pid_file = $base/run/\$name.pid
log_file = $base/log/\$name.log
mon_data = $base/mon/\$name
osd_data = $base/osd/\$name

[osd]
osd_objectstore = memstore
memstore_device_bytes = ${NARWHAL_TEST_S3_MEMSTORE_BYTES:-1073741824}

[client]
# The default (secure only) cannot work with auth none: radosgw would loop on error -13.
ms_mon_client_mode = crc secure

[client.rgw.local]
# Without tcp_nodelay a small GET on a kept-alive connection waits ~40 ms for a delayed ACK
# (Nagle holds the body behind the headers).
rgw_frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
rgw_data = $base/rgw
# Deleted objects' space is reclaimed by the garbage collector, 2 hours later by default;
# memstore holds everything in RAM, so collect soon.
rgw_gc_obj_min_wait = 10
rgw_gc_processor_period = 10
rgw_gc_processor_max_time = 10
EOF
}

# Probes by connecting: a port that refuses is taken to be free.
port_range_free() {
  local p
  for ((p = $1; p < $1 + 20; p++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 1
  done
  return 0
}

pick_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + (RANDOM % 600) * 20))
    port_range_free "$p" && { echo "$p"; return 0; }
  done
  die "found no 20 free consecutive ports in 20000-31999"
}

start() {
  local port=${1:-}
  if running; then
    [ -z "$port" ] || [ "$(cat "$base/port")" = "$port" ] || die "a cluster already runs in $base on port $(cat "$base/port")"
    print_env
    return 0
  fi
  if [ -z "$port" ]; then
    port=$(pick_port)
  else
    [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65515 ] || die "PORT must be a number from 1024 to 65515, not $port"
    port_range_free "$port" || die "a port in $port-$((port + 19)) is in use"
  fi
  install_packages
  # A base left by a cluster that died is started afresh: memstore data does not survive anyway.
  stop_daemons
  rm -rf "$base"
  mkdir -p "$base/run" "$base/log" "$base/mon/mon.a" "$base/osd/osd.0" "$base/rgw"
  : >"$base/empty.keyring"
  echo "$port" >"$base/port"
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$port" "$fsid"

  timeout 20 monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$((port + 1)),v1:127.0.0.1:$((port + 2))]" "$base/monmap" >/dev/null ||
    die "monmaptool failed"
  timeout 30 ceph-mon -c "$conf" --mkfs -i a --monmap "$base/monmap" >"$base/log/mkfs-mon.log" 2>&1 ||
    die "ceph-mon --mkfs failed: $(tail -3 "$base/log/mkfs-mon.log")"
  timeout 30 ceph-mon -c "$conf" -i a || die "ceph-mon did not start; see $base/log/mon.a.log"
  wait_for 20 "the mon answering" ceph_ mon stat

  local uuid id
  uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(ceph_ osd new "$uuid") || die "ceph osd new failed"
  [ "$id" = 0 ] || die "expected the first OSD to be osd.0, got osd.$id"
  timeout 60 ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" >"$base/log/mkfs-osd.log" 2>&1 ||
    die "ceph-osd --mkfs failed: $(tail -3 "$base/log/mkfs-osd.log")"
  timeout 30 ceph-osd -c "$conf" -i 0 >"$base/log/start-osd.log" 2>&1 || die "ceph-osd did not start; see $base/log/osd.0.log"
  wait_for 30 "osd.0 coming up" osd_up

  # radosgw forks into the background only once it has reached the mon.
  timeout 30 radosgw -c "$conf" -n client.rgw.local >"$base/log/start-rgw.log" 2>&1 ||
    die "radosgw did not start; see $base/log/client.rgw.local.log"
  wait_for 60 "the gateway answering on port $port" curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/"
  timeout 60 radosgw-admin -c "$conf" user create --uid=narwhal-test --display-name=narwhal-test \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$base/log/user-create.log" 2>&1 ||
    die "radosgw-admin user create failed: $(tail -3 "$base/log/user-create.log")"
  print_env
}

osd_up() {
  ceph_ osd dump | grep -q '^osd\.0 up'
}

case $action in
  start) start "${3:-}" ;;
  env)
    running || die "no cluster runs in $base (start it with: $0 start $base PORT)"
    print_env
    ;;
  stop)
    stop_daemons
    rm -rf "$base"
    ;;
  *) usage ;;
esac
