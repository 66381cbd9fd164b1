#!/usr/bin/env bash
# The browser the console's end-to-end tests drive: Debian's Chromium and ChromeDriver
# (/usr/bin/chromium, /usr/bin/chromedriver), and a CJK font so Chinese pages render (screenshots). Installs them with apt when missing (needs root or
# sudo); prints what to do when it cannot.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -d /usr/share/fonts/truetype/wqy ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: Chromium is missing and this user cannot install it; run as root:" >&2
    echo "  apt-get install -y chromium chromium-driver fonts-wqy-microhei" >&2
    exit 1
  fi
fi
echo "install-browser: installing Debian's chromium and chromium-driver (console end-to-end tests)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q chromium chromium-driver fonts-wqy-microhei >/tmp/confide-apt.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/confide-apt.log 2>&1 || true
  $SUDO apt-get install -y -q chromium chromium-driver fonts-wqy-microhei >>/tmp/confide-apt.log 2>&1 || {
    echo "error: could not install chromium/chromium-driver; apt said:" >&2
    tail -20 /tmp/confide-apt.log >&2
    exit 1
  }
fi
/usr/bin/chromium --version
