# shellcheck shell=bash
# A throwaway WordPress for the integration test and the benchmark, from Debian packages only:
# the `wordpress` package (6.1, extracted with dpkg-deb, not installed), MariaDB started by hand on a
# private socket, PHP's built-in web server. Sourced by tests/run.sh and bench/plugin_latency.py.
#
#   srt_wp_prepare            install what is missing (apt) and unpack WordPress into the cache
#   srt_wp_start WORK         fresh database + site in WORK, web server on 127.0.0.1; exports SRT_*
#   srt_wp_stop               stop the web server and MariaDB started by srt_wp_start
#
# The core tree is cached in ${STOCK_RELAY_CACHE:-~/.cache/stock-relay} so re-runs skip the unpacking.

srt_plugin_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

srt_apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing $* with apt-get..." >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

srt_wp_prepare() {
    local missing=()
    command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
    php -m 2>/dev/null | grep -qi '^mysqli$' || missing+=(php-mysql)
    php -m 2>/dev/null | grep -qi '^curl$' || missing+=(php-curl)
    if [ ${#missing[@]} -gt 0 ]; then
        srt_apt_install "${missing[@]}"
    fi
    SRT_CACHE="${STOCK_RELAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stock-relay}"
    SRT_CORE="$SRT_CACHE/wordpress-deb"
    if [ ! -f "$SRT_CORE/.ready" ]; then
        rm -rf "$SRT_CORE" && mkdir -p "$SRT_CORE"
        (cd "$SRT_CORE" && apt-get download wordpress >&2 2>/dev/null || { apt-get update -qq >&2 && apt-get download wordpress >&2; })
        dpkg-deb -x "$SRT_CORE"/wordpress_*.deb "$SRT_CORE/x"
        rm -f "$SRT_CORE"/wordpress_*.deb
        # Debian's wp-config.php reads /etc/wordpress; ours reads the file named by SRT_WP_CONFIG.
        printf '<?php\nrequire getenv( "SRT_WP_CONFIG" );\n' > "$SRT_CORE/x/usr/share/wordpress/wp-config.php"
        touch "$SRT_CORE/.ready"
    fi
    # Debian moves some of WordPress's libraries to packages of their own and links to them (e.g.
    # wp-includes/js/underscore.min.js -> ../../../javascript/underscore/, which the admin's scripts need):
    # unpack those beside it. Only adds files, so a WordPress running from the cache is not disturbed.
    if [ ! -e "$SRT_CORE/x/usr/share/wordpress/wp-includes/js/underscore.min.js" ]; then
        local libs=(libjs-underscore libjs-cropper php-getid3)
        (cd "$SRT_CORE" && apt-get download "${libs[@]}" >&2 2>/dev/null || { apt-get update -qq >&2 && apt-get download "${libs[@]}" >&2; })
        for lib in "${libs[@]}"; do dpkg-deb -x "$SRT_CORE/${lib}"_*.deb "$SRT_CORE/x"; done
        for lib in "${libs[@]}"; do rm -f "$SRT_CORE/${lib}"_*.deb; done
    fi
    SRT_ABSPATH="$SRT_CORE/x/usr/share/wordpress"
    export SRT_ABSPATH
}

srt_free_port() {
    php -r '$s = stream_socket_server("tcp://127.0.0.1:0"); $n = stream_socket_get_name($s, false); echo substr($n, strrpos($n, ":") + 1);'
}

srt_wp_start() {
    local work="$1"
    mkdir -p "$work/db" "$work/wp-content/plugins" "$work/wp-content/mu-plugins" "$work/wp-content/uploads"
    SRT_WORK="$work"
    # MariaDB on a private socket, no TCP, no system service.
    mariadb-install-db --no-defaults --datadir="$work/db" --user="$(id -un)" --auth-root-authentication-method=normal \
        --skip-test-db >"$work/mariadb-install.log" 2>&1
    mariadbd --no-defaults --datadir="$work/db" --socket="$work/mysql.sock" --skip-networking --user="$(id -un)" \
        --pid-file="$work/mariadb.pid" --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=2 \
        --skip-log-bin >"$work/mariadb.log" 2>&1 &
    SRT_DB_PID=$!
    for _ in $(seq 1 100); do
        [ -S "$work/mysql.sock" ] && mariadb --no-defaults -uroot --socket="$work/mysql.sock" -e 'SELECT 1' >/dev/null 2>&1 && break
        sleep 0.1
    done
    mariadb --no-defaults -uroot --socket="$work/mysql.sock" -e 'CREATE DATABASE wp CHARACTER SET utf8mb4'

    SRT_WP_PORT="$(srt_free_port)"
    SRT_WP_URL="http://127.0.0.1:$SRT_WP_PORT"
    cat >"$work/wp-config.php" <<PHP
<?php
define( 'DB_NAME', 'wp' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', 'localhost:$work/mysql.sock' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
foreach ( array( 'AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT' ) as \$k ) {
	define( \$k, '$(php -r 'echo bin2hex(random_bytes(16));')' . \$k );
}
\$table_prefix = 'wp_';
define( 'WP_HOME', '$SRT_WP_URL' );
define( 'WP_SITEURL', '$SRT_WP_URL' );
define( 'WP_CONTENT_DIR', '$work/wp-content' );
define( 'WP_CONTENT_URL', '$SRT_WP_URL/wp-content' );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_DISPLAY', false );
define( 'WP_DEBUG_LOG', '$work/debug.log' );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'WP_ACCESSIBLE_HOSTS', '127.0.0.1,localhost' );
if ( file_exists( '$work/wp-config-extra.php' ) ) {
	require '$work/wp-config-extra.php';
}
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', '$SRT_ABSPATH/' );
}
require_once ABSPATH . 'wp-settings.php';
PHP
    SRT_WP_CONFIG="$work/wp-config.php"
    export SRT_WORK SRT_WP_CONFIG SRT_WP_URL SRT_WP_PORT SRT_DB_PID
    # The plugin as a shop would install it (a copy, like an unzipped release), and the test-only mu-plugins.
    mkdir -p "$work/wp-content/plugins/stock-relay"
    (cd "$srt_plugin_dir" && tar cf - --exclude=./tests --exclude=./build --exclude=./bin . ) | tar xf - -C "$work/wp-content/plugins/stock-relay"
    cp "$srt_plugin_dir/tests/integration/wc-stand-ins.php" "$srt_plugin_dir/tests/integration/harness.php" "$work/wp-content/mu-plugins/"
    php "$srt_plugin_dir/tests/integration/install.php" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; return 1; }
    # The shop's web server: PHP's built-in server with a few workers (the loopback drain needs a second one);
    # the router serves wp-content's static files (the plugin's script), which live outside the docroot.
    PHP_CLI_SERVER_WORKERS="${SRT_WORKERS:-4}" php -d variables_order=EGPCS -S "127.0.0.1:$SRT_WP_PORT" -t "$SRT_ABSPATH" "$srt_plugin_dir/tests/integration/router.php" >"$work/php-server.log" 2>&1 &
    SRT_WEB_PID=$!
    export SRT_WEB_PID
    for _ in $(seq 1 100); do
        php -r 'exit(@fsockopen("127.0.0.1", (int) $argv[1]) ? 0 : 1);' "$SRT_WP_PORT" && break
        sleep 0.05
    done
}

srt_wp_stop() {
    if [ -n "${SRT_WEB_PID:-}" ]; then
        # PHP_CLI_SERVER_WORKERS forks workers that outlive their parent: stop them by pid first.
        local workers
        workers="$(ps -o pid= --ppid "$SRT_WEB_PID" 2>/dev/null || true)"
        # shellcheck disable=SC2086
        [ -n "$workers" ] && kill $workers 2>/dev/null
        kill "$SRT_WEB_PID" 2>/dev/null
    fi
    [ -n "${SRT_DB_PID:-}" ] && kill "$SRT_DB_PID" 2>/dev/null
    [ -n "${SRT_DB_PID:-}" ] && wait "$SRT_DB_PID" 2>/dev/null
    SRT_WEB_PID="" SRT_DB_PID=""
    return 0
}
