#!/usr/bin/env bash
# Installs the Debian packages tidings needs to build, test and benchmark.
# Idempotent: installs only what is missing and says nothing when all is there.
# Run as root (or with sudo available); used by `make run`, `make test` and CI.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libsqlite3-dev sqlite3
  libjansson-dev
  libcmocka-dev
  libcurl4-openssl-dev
  libmicrohttpd-dev
  libsodium-dev
  libpq-dev
  postgresql
  librabbitmq-dev
  rabbitmq-server
  curl
  jq
  python3
  clang-format
  clang libclang-rt-dev # libFuzzer: make fuzz, and the corpus replay of make test
  strace
  openssl
  cmark
  man-db groff-base
  chromium fonts-dejavu-core
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# Node.js and npm run the OpenAPI checks (tests/openapi/) and drive the
# console's browser test (tests/console/, with Debian's Chromium above); a
# machine that has them from elsewhere keeps its own.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # The rabbitmq-server package would start a system-wide node listening
  # on every interface; the tests and benchmarks start private ones
  # (scripts/start-rabbitmq.sh), so keep the package from starting it
  # (policy-rc.d, the Debian way, only for this install and only when the
  # machine has no policy of its own).
  policy=/usr/sbin/policy-rc.d
  if [[ " ${missing[*]} " == *" rabbitmq-server "* ]] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\ncase "$1" in rabbitmq-server|epmd) exit 101 ;; esac\nexit 0\n' |
      $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The npm packages of the OpenAPI checks and of the console's browser test
# (playwright-core, which downloads no browser: the test runs Debian's
# Chromium), exactly as each package-lock.json pins them; again only when
# the lock file is newer than what is installed.
for checks in openapi console; do
  folder="$(dirname "$0")/../tests/$checks"
  if [ ! "$folder/node_modules/.package-lock.json" -nt "$folder/package-lock.json" ]; then
    echo "install-deps: installing the npm packages of tests/$checks" >&2
    (cd "$folder" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent >/dev/null)
  fi
done
