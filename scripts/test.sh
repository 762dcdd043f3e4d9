#!/usr/bin/env bash
# Runs every test: type check, unit tests, then the suites that drive real peers (casync, Nix).
# Installs the system packages those peers need when they are missing (Debian, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A NEEDED=(
  [nix]=nix-bin [casync]=casync [xz]=xz-utils [zstd]=zstd [bzip2]=bzip2
  [brotli]=brotli [lz4]=lz4 [curl]=curl [wrk]=wrk [nginx]=nginx-light [ab]=apache2-utils
  [promtool]=prometheus [systemd-analyze]=systemd [chromium]=chromium [script]=bsdutils [openssl]=openssl
)
missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
# PostgreSQL's server binaries are not on PATH on Debian.
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: installing system packages the tests need: ${missing[*]}"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test: cannot install ${missing[*]}: run as root on Debian, or install them yourself (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Nix needs its store directory; the Debian package creates it, but a bare root may lack it.
mkdir -p /nix/store /nix/var/nix 2>/dev/null || true

echo "test: type check and lint"
tsc -p tsconfig.json
biome check --reporter=summary .

# One S3 server (Ceph RADOS Gateway) for the whole run; the S3 tests find it through
# NARWHAL_TEST_S3_ENDPOINT and the AWS_* variables. scripts/ceph-rgw.sh installs Ceph if needed.
echo "test: starting a Ceph RADOS Gateway (S3)"
rgw_base=$(mktemp -d "${TMPDIR:-/tmp}/narwhal-test-rgw.XXXXXX")
pg_base=
trap 'bash scripts/ceph-rgw.sh stop "$rgw_base"; [ -z "$pg_base" ] || bash scripts/postgres.sh stop "$pg_base"' EXIT
rgw_env=$(bash scripts/ceph-rgw.sh start "$rgw_base")
set -a
eval "$rgw_env"
set +a

# One PostgreSQL server for the whole run; the metadata tests find it through
# NARWHAL_TEST_DATABASE_URL and make a database of their own on it.
echo "test: starting PostgreSQL"
pg_base=$(mktemp -d "${TMPDIR:-/tmp}/narwhal-test-pg.XXXXXX")
pg_env=$(bash scripts/postgres.sh start "$pg_base")
set -a
eval "$pg_env"
set +a

echo "test: unit, storage, casync and end-to-end suites"
node --test --test-concurrency=2 --test-timeout=600000 \
  'test/unit/**/*.test.ts' 'test/metadata/**/*.test.ts' 'test/hostile/**/*.test.ts' 'test/storage/**/*.test.ts' 'test/casync/**/*.test.ts' 'test/e2e/**/*.test.ts' \
  'test/ui/**/*.test.ts' 'test/crash/**/*.test.ts' 'test/load/**/*.test.ts' 'test/diskfull/**/*.test.ts' 'test/bench/**/*.test.ts'
