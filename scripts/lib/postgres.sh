# Sourced by scripts/test: a private PostgreSQL for the suite's PostgreSQL store tests, the way the plugin's suite
# starts its own MariaDB. Debian's server binaries (apt-get install postgresql when missing), a new cluster in a
# temporary folder, listening only on a Unix socket in that folder (no TCP port, nothing shared with a system
# cluster), trust authentication on that socket. fsync is off: the tests kill relays, not the machine, so what the
# server has written survives in the page cache; the durability the relay promises is PostgreSQL's own.
#   pg_test_start   sets STOCK_RELAY_TEST_PG to the cluster's URL; pg_test_stop removes it (also on exit).

pg_test_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

pg_test_start() {
    local bindir
    bindir="$(pg_test_bindir)"
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        apt_install postgresql
        bindir="$(pg_test_bindir)"
    fi
    PG_TEST_DIR="$(mktemp -d "${TMPDIR:-/tmp}/stock-relay-pg.XXXXXX")"
    local as=()
    if [ "$(id -u)" -eq 0 ]; then  # the server refuses to run as root: it runs as Debian's postgres user
        chown postgres: "$PG_TEST_DIR"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bindir/initdb" -D "$PG_TEST_DIR/data" -A trust -U postgres -E UTF8 --no-sync >"$PG_TEST_DIR/initdb.log" 2>&1 \
        || { cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
    "${as[@]}" "$bindir/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses='' -k $PG_TEST_DIR -c fsync=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || { cat "$PG_TEST_DIR/server.log" >&2; return 1; }
    PG_TEST_CTL=("${as[@]}" "$bindir/pg_ctl" -D "$PG_TEST_DIR/data")
    export STOCK_RELAY_TEST_PG="postgresql:///postgres?host=$PG_TEST_DIR&user=postgres"
    # for the test that restarts the server under running relays
    export STOCK_RELAY_TEST_PG_CTL="${PG_TEST_CTL[*]}"
    trap pg_test_stop EXIT
}

pg_test_stop() {
    [ -n "${PG_TEST_DIR:-}" ] || return 0
    "${PG_TEST_CTL[@]}" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_TEST_DIR"
    PG_TEST_DIR=""
}
