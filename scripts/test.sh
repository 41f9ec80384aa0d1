#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, builds dist/, typechecks, lints (Biome), runs the host
# tests (real nats-server, SQLite files, network namespaces with nftables/ipset) and the IPVS tests
# inside a qemu VM. Ends with one line "tests: N passed, N failed" (a failed typecheck or lint counts
# as one failed test each).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$PATH:/usr/sbin:/sbin"

# The packages first, their native parts (better-sqlite3's SQLite: ~80 s of one core) beside the
# typecheck and lint below, which need the packages but not the native parts (both ~75 s in lane 2
# before 2026-12-05, where they ran beside lane 1).
native_later=0
[ "${SWITCHBOARD_SKIP_NPM_CI:-}" = 1 ] || native_later=1
SWITCHBOARD_NATIVE_LATER=$native_later bash scripts/install-deps.sh || exit 1

out="$(mktemp -d)"
native_pid=""
trap '[ -z "$native_pid" ] || kill "$native_pid" 2>/dev/null; rm -rf "$out"' EXIT

echo "== build (dist/)"
npm run --silent build || { echo "tests: 0 passed, 1 failed"; exit 1; }

# Two lanes on CI's 2 cores. vitest runs one worker there (its default: cores - 1), so host test
# files never overlap each other; the host suite spends much of its time waiting on processes and
# timers. Lane 1: the host tests but those of lane 2. Lane 2, beside it: the VM part (IPVS, qemu:
# one TCG thread, so about one core), then the rest of the host tests, so the core
# the VM frees is not left idle while lane 1 runs on alone.
# - Typecheck and lint (~40 s of CPU) ran before both lanes until 2026-12-02, then first in lane 2;
#   since 2026-12-05 they run before the lanes again, beside the native build they do not need.
#   Their output is printed at the end, and a failure fails the run.
# - Lane 2's host tests: test/libs/eventlog/ (mostly CPU: the 545 M-character checkpoints) but
#   checkpoint-crash and replication-cluster (they wait more than they compute), and test/ha/
#   (planner groups on nats clusters; ~100 s in lane 1 of the fresh clone of 2026-12-02 08:21
#   UTC). That clone had lane 1 done at 941 s and lane 2 at ~840 s (VM 637 s, event-log files
#   202 s), typecheck and lint before both; the VM's children then ran through tsx (~20 s each
#   under TCG), bundled since (test/support/child-bundles.mjs).
# The lanes share nothing but loopback ports the kernel hands out (freePort) and temp dirs.
# SWITCHBOARD_VM_SERIAL=1 runs everything one part after the other; SWITCHBOARD_SKIP_VM=1 starts
# lane 2's host tests at once beside lane 1.
lane2_files=()
for f in test/libs/eventlog/*.test.ts; do
  case "$f" in *checkpoint-crash.test.ts | *replication-cluster.test.ts) ;; *) lane2_files+=("$f") ;; esac
done
lane2_files+=(test/ha/*.test.ts)
# the console's Chromium tests (~41 s): lane 1 was the longer by ~140 s in the fresh clone of
# 2026-12-05 18:02 UTC (1050 s against the VM's 377 s and lane 2's host tests' 531 s)
lane2_files+=(test/services/console/*.browser.test.ts)
lane1_excludes=()
for f in "${lane2_files[@]}"; do lane1_excludes+=(--exclude "$f"); done
lane2_what="test/libs/eventlog/ (most), test/ha/, the console's browser tests"
vm_rc=0
host_rc=0
lane_pid=""
run_checks() {
  npx tsc -p tsconfig.json --noEmit >"$out/typecheck.log" 2>&1
  echo $? >"$out/typecheck.rc"
  npm run --silent lint >"$out/lint.log" 2>&1
  echo $? >"$out/lint.rc"
}
run_vm() {
  # bounded: a hung VM must fail the run long before CI's own limit
  NO_COLOR=1 VM_TIMEOUT="${VM_TIMEOUT:-1200}" bash scripts/test-vm.sh >"$out/vm.log" 2>&1
  echo $? >"$out/vm.rc"
}
run_lane2_host() {
  NO_COLOR=1 npx vitest run "${lane2_files[@]}" --reporter=default --reporter=json --outputFile.json="$out/host-lane2.json" \
    >"$out/host-lane2.log" 2>&1
  echo $? >"$out/host-lane2.rc"
}
if [ "$native_later" = 1 ]; then
  echo "== native modules (scripts/build-native.sh), typecheck and lint: side by side, their output below when the tests end"
  bash scripts/build-native.sh >"$out/native.log" 2>&1 &
  native_pid=$!
else
  echo "== typecheck and lint: output below when the tests end"
fi
run_checks
if [ -n "$native_pid" ]; then
  native_rc=0
  wait "$native_pid" || native_rc=$?
  native_pid=""
  if [ "$native_rc" -ne 0 ]; then
    cat "$out/native.log"
    echo "tests: 0 passed, 1 failed"
    exit 1
  fi
fi
if [ "${SWITCHBOARD_VM_SERIAL:-}" != 1 ]; then
  if [ "${SWITCHBOARD_SKIP_VM:-}" = 1 ]; then
    echo "SWITCHBOARD_SKIP_VM=1: VM tests not run"
    echo "== host tests ($lane2_what): started next to the other host tests, output below when they end"
    { run_lane2_host; } &
  else
    echo "== VM tests (IPVS), host tests ($lane2_what): started next to the other host tests, output below when they end"
    { run_vm; run_lane2_host; } &
  fi
  lane_pid=$!
fi

echo "== host tests (all but $lane2_what)"
npx vitest run "${lane1_excludes[@]}" --reporter=default --reporter=json --outputFile.json="$out/host.json"
host_rc=$?

if [ -n "$lane_pid" ]; then
  wait "$lane_pid"
else
  run_lane2_host
  [ "${SWITCHBOARD_SKIP_VM:-}" = 1 ] && echo "SWITCHBOARD_SKIP_VM=1: VM tests not run" || run_vm
fi
echo "== typecheck"
cat "$out/typecheck.log"
echo "== lint (biome.jsonc)"
cat "$out/lint.log"
check_rc=$(($(cat "$out/typecheck.rc" 2>/dev/null || echo 1) || $(cat "$out/lint.rc" 2>/dev/null || echo 1)))
echo "== host tests ($lane2_what)"
cat "$out/host-lane2.log"
host_rc=$((host_rc || $(cat "$out/host-lane2.rc" 2>/dev/null || echo 1)))
if [ "${SWITCHBOARD_SKIP_VM:-}" != 1 ]; then
  echo "== VM tests (IPVS)"
  cat "$out/vm.log"
  vm_rc=$(cat "$out/vm.rc" 2>/dev/null || echo 1)
fi

node -e '
  const fs = require("fs"); const dir = process.argv[1]; let p = 0, f = 0; const failures = [];
  for (const check of ["typecheck.rc", "lint.rc"]) {
    const rc = fs.existsSync(dir + "/" + check) ? fs.readFileSync(dir + "/" + check, "utf8").trim() : "";
    if (rc !== "0") f += 1;
  }
  for (const lane of ["host.json", "host-lane2.json"]) {
    if (fs.existsSync(dir + "/" + lane)) {
      const r = JSON.parse(fs.readFileSync(dir + "/" + lane, "utf8"));
      p += r.numPassedTests; f += r.numFailedTests;
      // name each failure here, at the end, so a CI that keeps only the tail of the output still says which test failed
      for (const file of r.testResults) {
        const rel = file.name.replace(process.cwd() + "/", "");
        for (const a of file.assertionResults.filter((a) => a.status === "failed"))
          failures.push(`${rel} > ${a.fullName}: ${String(a.failureMessages?.[0] ?? "").split("\n")[0].slice(0, 300)}`);
        if (file.status === "failed" && !file.assertionResults.some((a) => a.status === "failed"))
          failures.push(`${rel}: ${String(file.message ?? "").split("\n")[0].slice(0, 300)}`);
      }
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
  if (fs.existsSync(dir + "/vm.log"))
    for (const l of fs.readFileSync(dir + "/vm.log", "utf8").split("\n").map((l) => l.replace(/\x1b\[[0-9;]*m/g, ""))) if (/^\s*(FAIL|×)\s/.test(l)) failures.push("vm: " + l.trim());
  if (failures.length > 0) console.log("failed:\n" + failures.map((x) => "  " + x).join("\n"));
  console.log(`tests: ${p} passed, ${f} failed`);
' "$out"
[ "$host_rc" -eq 0 ] && [ "$vm_rc" -eq 0 ] && [ "$check_rc" -eq 0 ]
