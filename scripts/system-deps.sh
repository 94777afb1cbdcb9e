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

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
