#!/usr/bin/env bash
# Makes Debian's chromium available at /usr/bin/chromium for the browser tests (playwright-core
# drives it; no test tool ever downloads a browser of its own). Idempotent: when the binary is
# there, it only prints its version. Installing needs root and Debian's package lists.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "chromium.sh: $("$CHROMIUM" --version 2>/dev/null || echo chromium) at $CHROMIUM"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium.sh: $CHROMIUM is missing and apt-get is not available; install Chromium yourself" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "chromium.sh: installing chromium needs root (or sudo)" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "chromium.sh: $CHROMIUM missing; updating package lists (apt-get update)..."
$SUDO apt-get update -q
echo "chromium.sh: installing chromium (apt-get install -y chromium); this takes a minute or two..."
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation
echo "chromium.sh: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium) at $CHROMIUM"
