#!/usr/bin/env bash
# Installs what Switchboard's tests and demo need on a fresh Debian machine with Node and npm:
# Debian packages (as root, only when something is missing) and the npm dependencies (npm ci).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# command → Debian package providing it
declare -A need=(
  [nats-server]=nats-server [ipset]=ipset [ipvsadm]=ipvsadm [nft]=nftables
  [iptables-restore]=iptables [ip]=iproute2 [conntrack]=conntrack
  [qemu-system-x86_64]=qemu-system-x86 [modprobe]=kmod [cpio]=cpio
  [docker-compose]=docker-compose  # test/compose.test.ts validates compose.yaml (no engine needed)
  [chromium]=chromium  # the console's browser tests (headless, driven by playwright-core)
  [sqlite3]=sqlite3  # an operator's shell reading the live log (test/libs/eventlog/foreign-reader.test.ts)
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${need[$cmd]}")
done
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
# a child process with a shifted wall clock (probe12's clock tests: test/support/skewed-clock.ts)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(libfaketime)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${SWITCHBOARD_SKIP_NPM_CI:-}" != 1 ]; then
  if [ "${SWITCHBOARD_NATIVE_LATER:-}" = 1 ]; then
    # the packages without their install scripts: the caller runs scripts/build-native.sh next
    # (scripts/test.sh: beside the typecheck and lint, which do not need the native parts)
    npm ci --ignore-scripts --no-audit --no-fund 2>&1 | grep -v 'Unknown user config' || true
  else
    npm ci --no-audit --no-fund 2>&1 | grep -v 'Unknown user config' || true
    # require('better-sqlite3') alone does not load its addon: open a database
    node -e "new (require('better-sqlite3'))(':memory:').close(); require('netlink')" ||
      { echo "install-deps: native modules failed to load" >&2; exit 1; }
  fi
fi
