#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL server for the test suite.
#
#   eval "$(scripts/test-postgres.sh)"    # sets CONFIDE_TEST_PG_URL
#
# Prints exactly one line on stdout, `export CONFIDE_TEST_PG_URL=...`; all else
# goes to stderr. Idempotent: a running server is reused, a half-made one is
# rebuilt. Run as root, the server runs as the `postgres` OS user and PostgreSQL
# is installed with apt-get when missing. The cluster lives in
# /tmp/confide-pgtest-$UID, listens on 127.0.0.1 only (port $CONFIDE_PG_PORT,
# default 55432) with trust auth, and trades durability for speed (fsync=off):
# it holds test data only. Its database `confide_test` uses a linguistic (ICU)
# default collation where the server supports it, so tests notice any query
# that sorts by the database collation instead of code points.
#
# Stop it:  runuser -u postgres -- /usr/lib/postgresql/*/bin/pg_ctl -D /tmp/confide-pgtest-0/data stop
set -euo pipefail

PORT="${CONFIDE_PG_PORT:-55432}"
ROOT="${CONFIDE_PG_DIR:-/tmp/confide-pgtest-$(id -u)}"
DATA="$ROOT/data"
DB=confide_test

log() { echo "test-postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]] && echo "$d"
    return 0
}

install_postgres() {
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed; run as root or 'apt-get install postgresql'"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is unavailable"
    log "installing PostgreSQL with apt-get (one time)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

BIN=$(find_bindir)
if [[ -z "$BIN" ]]; then
    install_postgres
    BIN=$(find_bindir)
    [[ -n "$BIN" ]] || die "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb"
fi
MAJOR=$(basename "$(dirname "$BIN")")

# Root may not run the server: hand it to the postgres OS user.
if [[ $(id -u) -eq 0 ]]; then
    OWNER=postgres
    id -u "$OWNER" >/dev/null 2>&1 || die "no '$OWNER' OS user (is the postgresql package fully installed?)"
    as_owner() { (cd "$ROOT" && runuser -u "$OWNER" -- "$@"); }
else
    OWNER=$(id -un)
    as_owner() { (cd "$ROOT" && "$@"); }
fi

mkdir -p "$ROOT"
chown "$OWNER" "$ROOT"
chmod 700 "$ROOT"
exec 9>"$ROOT/lock"
flock 9 # two concurrent runs must not both initialize the cluster

ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U postgres; }
psql_admin() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }

url() {
    echo "export CONFIDE_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
}

# The postmaster of $DATA runs (not merely has a pid file; a killed one may linger as a zombie).
alive() {
    local pid
    pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
    [[ $(cut -d ' ' -f 3 "/proc/$pid/stat") != Z ]]
}
wait_ready() {
    local i
    for i in $(seq 1 "$1"); do ready && return 0; sleep 0.5; done
    return 1
}

# Fast path: a complete cluster from an earlier run that is up.
if [[ -f "$ROOT/ready-$MAJOR" ]] && alive && ready; then
    log "reusing the server on 127.0.0.1:$PORT ($DATA)"
    url
    exit 0
fi

start=$(date +%s.%N)
if [[ ! -f "$ROOT/ready-$MAJOR" ]]; then
    # Missing, half-made (interrupted run) or from another major version: rebuild.
    if alive; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate -t 20 stop >/dev/null 2>&1 || true
        ! alive || die "cannot stop the old server of $DATA"
    fi
    rm -rf "$DATA" "$ROOT"/ready-*
    log "initializing a PostgreSQL $MAJOR cluster in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C --auth=trust --no-sync >/dev/null
    cat >>"$DATA/postgresql.conf" <<EOF
# confide test server: loopback only, throwaway data
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$ROOT'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
fi

if ! alive; then
    # Nothing runs: the lock files of a killed server are stale (and may name a zombie).
    rm -f "$DATA/postmaster.pid" "$ROOT/.s.PGSQL.$PORT" "$ROOT/.s.PGSQL.$PORT.lock"
    log "starting the server on 127.0.0.1:$PORT"
    # 9>&-: the server must not inherit (and hold forever) the lock of this run.
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$ROOT/server.log" -w -t 60 start >/dev/null 9>&- \
        || { tail -n 20 "$ROOT/server.log" >&2 || true; die "the server did not start (port $PORT taken?)"; }
fi
wait_ready 60 || die "the server runs but does not answer on 127.0.0.1:$PORT; see $ROOT/server.log"

if [[ -z "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]]; then
    # ICU en-US orders 'a' < 'B' (unlike code points); fall back when ICU is absent.
    psql_admin -c "CREATE DATABASE $DB TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'
                   LOCALE_PROVIDER icu ICU_LOCALE 'en-US'" 2>/dev/null \
        || psql_admin -c "CREATE DATABASE $DB TEMPLATE template0 ENCODING 'UTF8'"
fi
touch "$ROOT/ready-$MAJOR"
log "ready in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }") s"
url
