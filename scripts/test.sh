#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, builds dist/, typechecks, lints (Biome), runs the host
# tests (real nats-server, SQLite files, network namespaces with nftables/ipset) and then the
# IPVS tests inside a qemu VM. Ends with one line "tests: N passed, N failed".
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$PATH:/usr/sbin:/sbin"

bash scripts/install-deps.sh || exit 1

echo "== build (dist/)"
npm run --silent build || { echo "tests: 0 passed, 1 failed"; exit 1; }

echo "== typecheck"
npx tsc -p tsconfig.json --noEmit || { echo "tests: 0 passed, 1 failed"; exit 1; }

echo "== lint (biome.jsonc)"
npm run --silent lint || { echo "tests: 0 passed, 1 failed"; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# The VM part (IPVS, qemu) runs next to the host tests, not after them: the host suite runs one
# vitest worker on a 2-core machine and spends much of its time waiting on processes and timers,
# so overlapping the two keeps the whole run well inside CI's 20 minutes (one after the other:
# host ~555 s + VM ~610 s). SWITCHBOARD_VM_SERIAL=1 runs them one after the other.
vm_rc=0
vm_pid=""
run_vm() {
  # bounded: a hung VM must fail the run long before CI's own limit
  NO_COLOR=1 VM_TIMEOUT="${VM_TIMEOUT:-1200}" bash scripts/test-vm.sh >"$out/vm.log" 2>&1
}
if [ "${SWITCHBOARD_SKIP_VM:-}" = 1 ]; then
  echo "SWITCHBOARD_SKIP_VM=1: VM tests not run"
elif [ "${SWITCHBOARD_VM_SERIAL:-}" != 1 ]; then
  echo "== VM tests (IPVS): started next to the host tests, output below when they end"
  run_vm &
  vm_pid=$!
fi

echo "== host tests"
npx vitest run --reporter=default --reporter=json --outputFile.json="$out/host.json"
host_rc=$?

if [ "${SWITCHBOARD_SKIP_VM:-}" != 1 ]; then
  if [ -n "$vm_pid" ]; then
    wait "$vm_pid"
    vm_rc=$?
  else
    run_vm
    vm_rc=$?
  fi
  echo "== VM tests (IPVS)"
  cat "$out/vm.log"
fi

node -e '
  const fs = require("fs"); const dir = process.argv[1]; let p = 0, f = 0;
  if (fs.existsSync(dir + "/host.json")) {
    const r = JSON.parse(fs.readFileSync(dir + "/host.json", "utf8"));
    p += r.numPassedTests; f += r.numFailedTests;
  } else f += 1;
  if (fs.existsSync(dir + "/vm.log")) {
    // vitest prints e.g. "Tests  2 failed | 9 passed (11)" as its closing summary
    const line = fs.readFileSync(dir + "/vm.log", "utf8").split("\n").reverse().find((l) => /^\s*Tests\s/.test(l));
    if (line) { p += Number(/(\d+) passed/.exec(line)?.[1] ?? 0); f += Number(/(\d+) failed/.exec(line)?.[1] ?? 0); }
    else f += 1; // the VM run ended before vitest reported: count it as a failure
  }
  console.log(`tests: ${p} passed, ${f} failed`);
' "$out"
[ "$host_rc" -eq 0 ] && [ "$vm_rc" -eq 0 ]
