#!/usr/bin/env bash
# Builds an installable stock-relay.zip (no tests or dev files) from the committed plugin.
set -euo pipefail
root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
out="${1:-$root/wp-plugin/build/stock-relay.zip}"
mkdir -p "$(dirname "$out")"
# git archive applies wp-plugin/.gitattributes export-ignore; --prefix gives the folder WordPress expects.
git -C "$root" archive --format=zip --prefix=stock-relay/ -o "$out" HEAD:wp-plugin
echo "$out"
