#!/usr/bin/env bash
# etcd for the etcd-replicated ledger's tests (a three-member Raft cluster on loopback): Debian's
# etcd-server (/usr/bin/etcd). Installs it with apt when missing (needs root or sudo); prints what to
# do when it cannot. The tests start their own members; no system service is used.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: etcd is missing and this user cannot install it; run as root: apt-get install -y etcd-server" >&2
    exit 1
  fi
fi
echo "install-etcd: installing Debian's etcd-server (etcd-replicated ledger tests)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends etcd-server >/tmp/confide-apt-etcd.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/confide-apt-etcd.log 2>&1 || true
  $SUDO apt-get install -y -q --no-install-recommends etcd-server >>/tmp/confide-apt-etcd.log 2>&1 || {
    echo "error: could not install etcd-server; apt said:" >&2
    tail -20 /tmp/confide-apt-etcd.log >&2
    exit 1
  }
fi
etcd --version | head -1
