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

# Two lanes on CI's 2 cores. vitest runs one worker there (its default: cores - 1), so host test
# files never overlap each other; the host suite spends much of its time waiting on processes and
# timers. Lane 1: the host tests but test/libs/eventlog/. Lane 2, beside it: the VM part (IPVS, qemu),
# then test/libs/eventlog/ (mostly CPU: the 545 M-character checkpoints), so the core the VM frees
# is not left idle while lane 1 runs on alone. Fresh clone, 2026-12-02, with one host lane: host
# 1,008 s (event-log files 207 s of it) beside the VM's 599 s, 18 min 53 s in all. The event-log files
# share nothing with the rest but loopback ports the kernel hands out (freePort) and temp dirs.
# SWITCHBOARD_VM_SERIAL=1 runs the three parts one after the other; SWITCHBOARD_SKIP_VM=1 starts
# the event-log files at once beside lane 1.
# Lane 2 takes the event-log files but the two that wait more than they compute (a crash child,
# a 3-server cluster): the fresh clone of 2026-12-02 02:00 UTC had lane 1 done at 911 s and lane 2
# at ~1,004 s (VM 754 s, then 250 s of event-log files); those two (~62 s) even the lanes out.
eventlog=test/libs/eventlog/
lane2_files=()
for f in "$eventlog"*.test.ts; do
  case "$f" in *checkpoint-crash.test.ts | *replication-cluster.test.ts) ;; *) lane2_files+=("$f") ;; esac
done
lane1_excludes=()
for f in "${lane2_files[@]}"; do lane1_excludes+=(--exclude "$f"); done
vm_rc=0
host_rc=0
lane_pid=""
run_vm() {
  # bounded: a hung VM must fail the run long before CI's own limit
  NO_COLOR=1 VM_TIMEOUT="${VM_TIMEOUT:-1200}" bash scripts/test-vm.sh >"$out/vm.log" 2>&1
  echo $? >"$out/vm.rc"
}
run_eventlog() {
  NO_COLOR=1 npx vitest run "${lane2_files[@]}" --reporter=default --reporter=json --outputFile.json="$out/host-eventlog.json" \
    >"$out/host-eventlog.log" 2>&1
  echo $? >"$out/host-eventlog.rc"
}
if [ "${SWITCHBOARD_VM_SERIAL:-}" != 1 ]; then
  if [ "${SWITCHBOARD_SKIP_VM:-}" = 1 ]; then
    echo "SWITCHBOARD_SKIP_VM=1: VM tests not run"
    echo "== host tests ($eventlog): started next to the other host tests, output below when they end"
    run_eventlog &
  else
    echo "== VM tests (IPVS), then host tests ($eventlog): started next to the other host tests, output below when they end"
    { run_vm; run_eventlog; } &
  fi
  lane_pid=$!
fi

echo "== host tests (all but most of $eventlog)"
npx vitest run "${lane1_excludes[@]}" --reporter=default --reporter=json --outputFile.json="$out/host.json"
host_rc=$?

if [ -n "$lane_pid" ]; then
  wait "$lane_pid"
else
  run_eventlog
  [ "${SWITCHBOARD_SKIP_VM:-}" = 1 ] && echo "SWITCHBOARD_SKIP_VM=1: VM tests not run" || run_vm
fi
echo "== host tests ($eventlog)"
cat "$out/host-eventlog.log"
host_rc=$((host_rc || $(cat "$out/host-eventlog.rc" 2>/dev/null || echo 1)))
if [ "${SWITCHBOARD_SKIP_VM:-}" != 1 ]; then
  echo "== VM tests (IPVS)"
  cat "$out/vm.log"
  vm_rc=$(cat "$out/vm.rc" 2>/dev/null || echo 1)
fi

node -e '
  const fs = require("fs"); const dir = process.argv[1]; let p = 0, f = 0;
  for (const lane of ["host.json", "host-eventlog.json"]) {
    if (fs.existsSync(dir + "/" + lane)) {
      const r = JSON.parse(fs.readFileSync(dir + "/" + lane, "utf8"));
      p += r.numPassedTests; f += r.numFailedTests;
      // a file that failed outside its tests (a beforeAll, an import) counts once: its tests show as skipped
      f += r.testResults.filter((t) => t.status === "failed" && !t.assertionResults.some((a) => a.status === "failed")).length;
    } else f += 1;
  }
  if (fs.existsSync(dir + "/vm.log")) {
    // vitest prints e.g. "Tests  2 failed | 9 passed (11)" as its closing summary
    const line = fs.readFileSync(dir + "/vm.log", "utf8").split("\n").reverse().find((l) => /^\s*Tests\s/.test(l));
    if (line) { p += Number(/(\d+) passed/.exec(line)?.[1] ?? 0); f += Number(/(\d+) failed/.exec(line)?.[1] ?? 0); }
    else f += 1; // the VM run ended before vitest reported: count it as a failure
  }
  console.log(`tests: ${p} passed, ${f} failed`);
' "$out"
[ "$host_rc" -eq 0 ] && [ "$vm_rc" -eq 0 ]
