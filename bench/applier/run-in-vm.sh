#!/usr/bin/env bash
# Runs the applier (ipvs) benchmark in the test VM, in a fresh netns: bash bench/applier/run-in-vm.sh [SERVICES] [ENDPOINTS]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
s="${1:-1000}" e="${2:-10}"
exec "$repo/test/vm/harness/run-in-vm.sh" --mem "${VM_MEM:-4096}" --timeout "${VM_TIMEOUT:-3600}" -- \
  bash -c "ip netns add sbbench && ip netns exec sbbench node --import tsx bench/applier/ipvs-apply.bench.ts $s $e; rc=\$?; ip netns del sbbench; exit \$rc"
