#!/usr/bin/env bash
# The plugin's PHP checks, from a clean clone (bash wp-plugin/tests/run.sh, as root or with sudo):
#   1. installs what is missing from Debian (php-cli, phpunit, php-mbstring, php-xml, php-curl,
#      php-mysql, mariadb-server; the `wordpress` package is downloaded and unpacked, not installed),
#   2. php -l on every PHP file, and languages/stock-relay.pot holds every text of the code as it is now
#      (bin/make-pot.sh, GNU gettext), each text with a placeholder with its translators comment,
#   3. phpunit: the unit suite (plain classes, shared signing vectors),
#   4. phpunit: the integration suite against a real WordPress 6.1 + MariaDB + PHP's web server,
#      with a recording relay on 127.0.0.1,
#   5. the browser stage (tests/browser, pytest + selenium): Debian's chromium and chromium-driver,
#      headless, drive that same WordPress's admin against the real relay (python -m relay serve):
#      log in, save good and bad settings, the relay's status, Test connection, every action button,
#      the Products screen; no JavaScript console error and no PHP notice in debug.log. Python and
#      selenium come from the project's .venv (made or updated by scripts/lib/venv.sh). A failing
#      test leaves a screenshot and the page's HTML in the artefacts folder printed at the start,
#      which is kept only when the stage fails.
# Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
# shellcheck source=integration/wp-env.sh
. tests/integration/wp-env.sh

missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
command -v phpunit >/dev/null 2>&1 || missing+=(phpunit)
if command -v php >/dev/null 2>&1; then
    php -m | grep -qi '^mbstring$' || missing+=(php-mbstring)
    php -m | grep -qi '^dom$' || missing+=(php-xml)
    php -m | grep -qi '^curl$' || missing+=(php-curl)
    php -m | grep -qi '^mysqli$' || missing+=(php-mysql)
else
    missing+=(php-mbstring php-xml php-curl php-mysql)
fi
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v xgettext >/dev/null 2>&1 || missing+=(gettext)
if [ ${#missing[@]} -gt 0 ]; then
    srt_apt_install "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"

echo "== php -l"
count=0
while IFS= read -r -d '' file; do
    php -l "$file" >/dev/null
    count=$((count + 1))
done < <(find . -name '*.php' -not -path './build/*' -print0)
echo "$count files, no syntax errors"

echo "== languages/stock-relay.pot is current"
# Compared without the creation date and the line numbers of the references, so moving code needs no new .pot;
# a text added, changed or removed does (a translator would otherwise never see it).
fresh="$(mktemp)"
bash bin/make-pot.sh "$fresh" >/dev/null
pot_text() { sed -e '/^"POT-Creation-Date: /d' -e '/^#: /s/:[0-9][0-9]*//g' "$1"; }
if ! diff -u <(pot_text languages/stock-relay.pot) <(pot_text "$fresh") >"$fresh.diff"; then
    head -n 60 "$fresh.diff" >&2
    echo "languages/stock-relay.pot is out of date: run bash wp-plugin/bin/make-pot.sh and commit it" >&2
    rm -f "$fresh" "$fresh.diff"
    exit 1
fi
# WordPress's own check (PHPCS, WordPress.WP.I18n), which CI cannot run: a text with placeholders needs a
# "translators:" comment where xgettext finds it (the line above the line the text starts on).
uncommented="$(awk -v RS= '/#, php-format/ && !/#\. translators:/' "$fresh")"
rm -f "$fresh" "$fresh.diff"
if [ -n "$uncommented" ]; then
    printf '%s\n' "$uncommented" >&2
    echo "texts with placeholders but no translators comment (above)" >&2
    exit 1
fi
echo "$(grep -c '^msgid "[^"]' languages/stock-relay.pot) texts, each placeholder explained"

echo "== phpunit: unit"
phpunit -c phpunit.xml.dist

echo "== phpunit: WordPress integration"
srt_wp_prepare
work="$(mktemp -d "${TMPDIR:-/tmp}/stock-relay-wp.XXXXXX")"
cleanup() {
    srt_wp_stop
    if [ "${SRT_KEEP:-}" = "1" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
srt_wp_start "$work"
status=0
phpunit -c tests/integration/phpunit.xml || status=$?
if [ "$status" -ne 0 ]; then
    for log in debug.log php-server.log recorder/server.log; do
        if [ -s "$work/$log" ]; then echo "--- $log (last 40 lines)" >&2; tail -n 40 "$work/$log" >&2; fi
    done
fi

echo "== browser: the admin in chromium (selenium), same WordPress, the real relay"
root="$(cd "$here/.." && pwd)"
# shellcheck source=../../scripts/lib/venv.sh
. "$root/scripts/lib/venv.sh"
ensure_venv "$root" # a no-op when scripts/test has just made it
artifacts="$(mktemp -d "${TMPDIR:-/tmp}/stock-relay-browser.XXXXXX")"
echo "artefacts of failing browser tests (kept on failure): $artifacts"
browser=0
(cd "$root" && SRT_BROWSER_ARTIFACTS="$artifacts" .venv/bin/python -m pytest -q -p no:cacheprovider wp-plugin/tests/browser) || browser=$?
if [ "$browser" -eq 0 ]; then
    rm -rf "$artifacts"
else
    if [ "$browser" -eq 5 ]; then echo "the browser stage collected no tests: that is a failure" >&2; fi
    for log in debug.log php-server.log; do
        if [ -s "$work/$log" ]; then cp "$work/$log" "$artifacts/"; fi
    done
    echo "browser stage failed; screenshots, page HTML and logs kept in $artifacts" >&2
    [ "$status" -ne 0 ] || status=$browser
fi
exit "$status"
