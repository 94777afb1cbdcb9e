#!/usr/bin/env bash
# Install the Debian packages the tests and benchmarks use, when missing.
# Needs root (or passwordless sudo); does nothing when everything is present.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have openssl || need+=(openssl)
have pdfsig || need+=(poppler-utils)
have softhsm2-util || need+=(softhsm2)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
have certutil || need+=(libnss3-tools)
have wrk || need+=(wrk)
# qpdf --check is a third witness (besides pdfsig and pyHanko) of the PDFs signing writes.
have qpdf || need+=(qpdf)
# The browser tests (tests/web) drive Debian's Chromium; npm fetches axe-core for them.
[ -x /usr/bin/chromium ] || need+=(chromium)
have npm || need+=(npm)

if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# axe-core at the version pinned in tests/web/package-lock.json, for the accessibility
# checks of the browser tests; installed again whenever the lock file changes.
web="$(cd "$(dirname "$0")/../tests/web" && pwd)"
if ! cmp -s "$web/package-lock.json" "$web/node_modules/.eid-installed-lock"; then
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.eid-installed-lock)
fi
