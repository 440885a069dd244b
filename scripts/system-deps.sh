#!/bin/sh
# System packages the test suite drives for real: headless Chromium and its driver, and swaks.
# Installs them with apt-get when missing (as root, or through sudo when available).
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
    && command -v swaks >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "coldrelay tests need chromium, chromium-driver and swaks: install them with your package manager." >&2
    exit 1
fi
echo "Installing chromium and chromium-driver for the browser tests, and swaks for the SMTP tests..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver fonts-dejavu-core swaks >/dev/null
