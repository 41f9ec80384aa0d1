#!/usr/bin/env bash
# The demo: what Switchboard does today, on the embedded example cluster (examples/demo).
# Installs what it needs (npm ci, Debian packages as root) unless already present.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$PATH:/usr/sbin:/sbin"
[ -d node_modules/better-sqlite3 ] || bash scripts/install-deps.sh
sb() { "$repo/bin/switchboard" "$@"; }

dir=examples/demo
echo "== plan for node-a (ipvsadm -Sn form)"
sb plan --manifests "$dir" --node node-a --format ipvsadm
echo "== plan for node-a (ipset save form, non-empty sets)"
sb plan --manifests "$dir" --node node-a --format ipset | awk '/^create/{c=$0; next} {if (c) print c; c=""; print}'
