# Sourced by ./stock-relay and scripts/test: make sure .venv exists with the relay installed.
# A virtual environment, never a system pip install (PEP 668 on Debian 12 / Ubuntu 24.04).

ensure_venv() {
    local root="$1"
    local venv="$root/.venv"
    local stamp="$venv/.installed-from"
    if [ ! -x "$venv/bin/python" ]; then
        if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
            apt_install python3-venv
        fi
        echo "setting up $venv (first run only)..." >&2
        python3 -m venv "$venv"
    fi
    # Reinstall when pyproject.toml changed since the last install.
    local want
    want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[test]" >&2
        echo "$want" > "$stamp"
    fi
}

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} with apt-get..." >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}
