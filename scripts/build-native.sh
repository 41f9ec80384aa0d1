#!/usr/bin/env bash
# Runs the install scripts `npm ci --ignore-scripts` skipped (scripts/install-deps.sh with
# SWITCHBOARD_NATIVE_LATER=1): every package the lockfile marks `hasInstallScript` (better-sqlite3
# compiles SQLite: ~80 s of one core; netlink's addon; esbuild's binary check), then checks that
# the native modules load. scripts/test.sh runs it beside the typecheck and lint, which need the
# packages but not their native parts; a plain `npm ci` runs the same scripts itself.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
mapfile -t pkgs < <(node -e '
  const lock = require("./package-lock.json");
  for (const [p, v] of Object.entries(lock.packages ?? {}))
    if (v.hasInstallScript && p.startsWith("node_modules/")) console.log(p.slice("node_modules/".length));
')
[ "${#pkgs[@]}" -gt 0 ] && { npm rebuild "${pkgs[@]}" 2>&1 | grep -v 'Unknown user config' || true; }
# require('better-sqlite3') alone does not load its addon: open a database
node -e "new (require('better-sqlite3'))(':memory:').close(); require('netlink')" ||
  { echo "build-native: native modules failed to load (${pkgs[*]})" >&2; exit 1; }
