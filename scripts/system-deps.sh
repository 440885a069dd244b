#!/bin/sh
# System packages the test suite drives for real: headless Chromium and its driver, swaks, and Dovecot (IMAP).
# Installs them with apt-get when missing (as root, or through sudo when available).
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
    && command -v swaks >/dev/null 2>&1 && [ -x /usr/sbin/dovecot ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "coldrelay tests need chromium, chromium-driver, swaks and dovecot-imapd: install them with your package manager." >&2
    exit 1
fi
echo "Installing chromium and chromium-driver for the browser tests, swaks for the SMTP tests, dovecot-imapd for IMAP..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver fonts-dejavu-core swaks dovecot-imapd >/dev/null
