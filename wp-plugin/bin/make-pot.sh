#!/usr/bin/env bash
# Writes languages/stock-relay.pot, the template translators start from, from the plugin's PHP.
#
# WordPress's own tool is `wp i18n make-pot` (WP-CLI), which is not packaged by Debian; this does the same job
# with GNU gettext's xgettext (Debian: gettext): the same keywords as WordPress's (__, _e, _x, _n, _nx, the
# esc_*__ forms, the _noop forms), "translators:" comments kept, the plugin's header (name, description, URI,
# author) added as WP-CLI does, and the header fields WordPress reads (X-Domain). Run it after changing
# user-facing strings, and before a release:
#   bash wp-plugin/bin/make-pot.sh            # rewrites wp-plugin/languages/stock-relay.pot
#   bash wp-plugin/bin/make-pot.sh OUT.pot    # writes OUT.pot instead (tests/run.sh compares the two)
set -euo pipefail
plugin="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$plugin/languages/stock-relay.pot}"
command -v xgettext >/dev/null 2>&1 || { echo "xgettext not found: apt-get install gettext" >&2; exit 1; }
cd "$plugin"
version="$(sed -n 's/^ \* Version: *//p' stock-relay.php)"
header() { sed -n "s/^ \\* $1: *//p" stock-relay.php; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The plugin header's translatable fields, as WordPress translates them (the plugin's own text domain).
po_string() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
declare -A seen=()
{
    for field in "Plugin Name" "Plugin URI" "Description" "Author"; do
        value="$(header "$field")"
        # One entry per text (the name and the author are both "Stock Relay"), as msgid must be unique.
        [ -n "$value" ] && [ -z "${seen[$value]:-}" ] || continue
        seen[$value]=1
        printf '#. %s of the plugin\n#: stock-relay.php\nmsgid "%s"\nmsgstr ""\n\n' "$field" "$(po_string "$value")"
    done
} > "$tmp/header.po"

# Sorted file list: the same tree gives the same .pot.
find . -name '*.php' -not -path './tests/*' -not -path './build/*' -not -path './vendor/*' | LC_ALL=C sort > "$tmp/files"
xgettext --language=PHP --from-code=UTF-8 --files-from="$tmp/files" --output="$tmp/code.pot" \
    --add-comments=translators: --sort-by-file --no-wrap \
    --package-name="Stock Relay" --package-version="$version" \
    --msgid-bugs-address="https://github.com/stock-relay/stock-relay/issues" \
    --keyword --keyword=__:1 --keyword=_e:1 --keyword=_x:1,2c --keyword=_ex:1,2c \
    --keyword=_n:1,2 --keyword=_nx:1,2,4c --keyword=_n_noop:1,2 --keyword=_nx_noop:1,2,3c \
    --keyword=esc_attr__:1 --keyword=esc_html__:1 --keyword=esc_attr_e:1 --keyword=esc_html_e:1 \
    --keyword=esc_attr_x:1,2c --keyword=esc_html_x:1,2c

# xgettext's header, with the fields WP-CLI writes (X-Domain tells tools the text domain).
sed -i \
    -e 's/^"Content-Type: text\/plain; charset=CHARSET\\n"/"Content-Type: text\/plain; charset=UTF-8\\n"/' \
    -e 's/^"Language: \\n"/"Language: \\n"\n"X-Domain: stock-relay\\n"/' \
    -e '1,/^$/ s/^# SOME DESCRIPTIVE TITLE\./# Stock Relay: translation template (bin\/make-pot.sh)./' \
    -e '1,/^$/ s/^# Copyright (C) YEAR THE PACKAGE.S COPYRIGHT HOLDER/# This file is distributed under the GPL-2.0-or-later./' \
    -e '1,/^$/ { /^# This file is distributed under the same license/d; /^# FIRST AUTHOR/d; }' \
    -e '/^#, fuzzy$/d' \
    "$tmp/code.pot"
msgcat --no-wrap --output-file="$out" "$tmp/code.pot" "$tmp/header.po"
sed -i '/^#\. #-#-#-#-#  .*  #-#-#-#-#$/d' "$out" # msgcat's marker of which file a comment came from
# msgcat merges the comments and references of a text found in both (the name is also a page title).
echo "$out: $(grep -c '^msgid "[^"]' "$out") strings"
