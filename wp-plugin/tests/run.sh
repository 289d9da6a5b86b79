#!/usr/bin/env bash
# The plugin's PHP checks: php -l on every file, then the phpunit unit suites.
# Installs Debian's php-cli and phpunit when missing (root or sudo).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
command -v phpunit >/dev/null 2>&1 || missing+=(phpunit)
php -m 2>/dev/null | grep -qi '^mbstring$' || missing+=(php-mbstring)
php -m 2>/dev/null | grep -qi '^dom$' || missing+=(php-xml)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} with apt-get..." >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

echo "== php -l"
count=0
while IFS= read -r -d '' file; do
    php -l "$file" >/dev/null
    count=$((count + 1))
done < <(find . -name '*.php' -not -path './build/*' -print0)
echo "$count files, no syntax errors"

echo "== phpunit"
phpunit -c phpunit.xml.dist
