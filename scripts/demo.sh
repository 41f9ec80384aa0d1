#!/usr/bin/env bash
# The demo: a three-node Switchboard cluster with real traffic. As root with network namespaces:
# nats-server with per-node permissions, the planner on examples/demo, three node namespaces on a
# bridge with appliers in --mode auto, pods answering HTTP with their name, and a client; then a
# narrated story (traffic spread, scale-up, a rollout one node refuses, pin, audit). Without root
# or namespaces it says why and runs the same story with dry-run appliers.
#   bash scripts/demo.sh [--keep] [--dry-run]    --keep leaves it running and prints how to explore
#   bash scripts/demo.sh --cleanup DIR           removes what a --keep run left
# Installs what it needs by itself (scripts/install-deps.sh). The driver is scripts/demo/demo.ts.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$PATH:/usr/sbin:/sbin"
if ! command -v nats-server >/dev/null || [ ! -d node_modules/better-sqlite3/build ] || [ ! -d node_modules/tsx ]; then
  bash scripts/install-deps.sh
fi
node scripts/build.mjs --if-stale # bin/switchboard runs dist/ (docs/packaging.md)
# exec: signals (Ctrl-C, SIGTERM) go straight to the driver, which stops and removes everything.
exec node --import tsx scripts/demo/demo.ts "$@"
