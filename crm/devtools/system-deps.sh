#!/usr/bin/env bash
# Debian packages the test suite needs: Dovecot (IMAP tests), redis-server (private Redis when
# REDIS_URL is unset, Celery tests), Chromium (Playwright browser tests), docker-compose (validates
# docker-compose.yml offline: tests/infra/test_compose.py, make compose-check; no Docker engine needed).
# Installs the missing ones when running as root; otherwise prints the command to run and fails.
set -euo pipefail

missing=()
{ [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] && [ -x /usr/lib/dovecot/imap-login ]; } \
  || missing+=(dovecot-imapd)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || [ -x /usr/bin/docker-compose ] || missing+=(docker-compose)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[devtools] installing missing system packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them with:" >&2
  echo "  sudo sh -c '$cmd'" >&2
  exit 1
fi
