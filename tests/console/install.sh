#!/usr/bin/env bash
# Installs what tests/console.rs needs: Debian's chromium and Python Playwright (the driver
# only: the test launches /usr/bin/chromium, so no browser is downloaded). Idempotent and
# non-interactive; run as root (or with sudo available).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PLAYWRIGHT_VERSION=1.65.2

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

if [ ! -x /usr/bin/chromium ]; then
    # The package lists may be missing on a fresh machine: update first, then install.
    sudo_if_needed apt-get update -qq
    sudo_if_needed apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core </dev/null
fi

if ! python3 -c "import playwright.sync_api" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "playwright==${PLAYWRIGHT_VERSION}" </dev/null
fi

dpkg-query -W -f 'chromium ${Version}\n' chromium
python3 -c "from importlib.metadata import version; print('playwright', version('playwright'))"
