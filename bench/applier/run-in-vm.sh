#!/usr/bin/env bash
# Runs the applier (ipvs) benchmark in the test VM, in a fresh netns: bash bench/applier/run-in-vm.sh [SERVICES] [ENDPOINTS]
# BENCH_NODE_FLAGS passes V8/node flags to the applying process; BENCH_SETTLE_MS=N waits N ms between the load and the changes; BENCH_WARMUP=N applies N unmeasured changes first; BENCH_PHASES=1 adds kernel time by phase to the result; BENCH_WINDOW=N / BENCH_BATCH=N / BENCH_DUMP_SOCKETS=N set the netlink window, requests per datagram and destination-dump sockets; BENCH_CPU_PROF=1 also takes a V8 CPU profile of the run and prints its top self-time functions
# (before the result line, which stays the last line of stdout). BENCH_BUILD=1 runs the bench
# bundled as scripts/build.mjs bundles the shipped CLI (esbuild, bench/applier/build-bench.mjs, on
# the host: the repo is read-only in the VM) with plain node, instead of under tsx, whose
# transform adds keepNames wrappers the shipped build does not have.
# BENCH_STEADY_PROF=1 profiles 300 further changes after the measured ones (the steady change's time
# outside its kernel call) and prints that profile's top self-time functions the same way.
# BENCH_FIRST_PROF=1 profiles the measured changes right after the load (a diagnostic run: the
# profiler's cost is then inside those figures). The bench sets the applier command's V8 flags
# (services/applier/v8-tiering.ts) as the applier does; BENCH_V8_DEFAULTS=1 runs with V8's defaults.
# BENCH_V8_FLAGS="--f ..." sets more V8 flags in the bench process, after the applier's (a screen).
# BENCH_IPVS_RECV_BUFFER=N sets the IPVS sockets' fixed receive buffer (0: peek each datagram's size).
# BENCH_IPVS_RUN_ESTIMATION=0|1 sets net.ipv4.vs.run_estimation in the bench's netns and in the
# baseline's, before either loads (unset: the kernel's default, 1); the result says it (ipvsRunEstimation).
# The bench runs the applier's full GC after a big apply (services/applier/gc-after-big-apply.ts) after
# the load and after each change, outside every timing (gcAfterLoadMs); BENCH_GC_AFTER_LOAD=0 leaves it out;
# BENCH_GC_FINISH_SWEEPING=0 leaves its sweeping to V8's threads (as before the eleventh round).
# BENCH_AB="A|B" runs the bench once per variant, BENCH_AB_ROUNDS times (default 1), alternating,
# in ONE boot, each in a fresh netns: a variant is space-separated NAME=VALUE settings of the
# environment (or "-" for none), e.g. BENCH_AB="BENCH_IPVS_RECV_BUFFER=0|-". Each run prints its
# result line (which carries what it ran with); the exit code is the last failure's, else 0.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
s="${1:-1000}" e="${2:-10}"
prof=""
[ "${BENCH_CPU_PROF:-0}" = 1 ] && prof="--cpu-prof --cpu-prof-dir /tmp/sb-prof"
runner="--import tsx bench/applier/ipvs-apply.bench.ts"
if [ "${BENCH_BUILD:-0}" = 1 ]; then
  (cd "$repo" && node bench/applier/build-bench.mjs .cache/bench-applier/ipvs-apply.bench.mjs)
  runner=".cache/bench-applier/ipvs-apply.bench.mjs"
fi
bench="ip netns add sbbench && ip netns exec sbbench node $prof ${BENCH_NODE_FLAGS:-} $runner $s $e > /tmp/sb-bench.out; rc=\$?; ip netns del sbbench"
if [ -z "${BENCH_AB:-}" ]; then
  cmd="$bench
    if [ -d /tmp/sb-prof ]; then for f in /tmp/sb-prof/*.cpuprofile; do node --import tsx bench/applier/cpu-profile-summary.ts \"\$f\" 40; done; fi
    cat /tmp/sb-bench.out; exit \$rc"
else
  cmd="last=0
    for round in \$(seq 1 ${BENCH_AB_ROUNDS:-1}); do
      IFS='|' read -ra variants <<< '${BENCH_AB}'
      for v in \"\${variants[@]}\"; do
        [ \"\$v\" = - ] && v=
        echo \"bench-ab: round \$round variant \${v:--} \$(cut -d' ' -f1-3 /proc/loadavg)\" >&2
        [ -z \"\$v\" ] || export \$v
        $bench
        tail -n 1 /tmp/sb-bench.out; [ \$rc = 0 ] || last=\$rc
        for kv in \$v; do unset \"\${kv%%=*}\"; done
      done
    done; exit \$last"
fi
# The VM's output passes through emulator-cpu.sh, which writes the emulator's CPU time over the
# baseline and over our load to stderr (the bench marks both on its stderr); the exit code is the VM's.
set +e
"$repo/test/vm/harness/run-in-vm.sh" --mem "${VM_MEM:-4096}" --timeout "${VM_TIMEOUT:-3600}" --env "BENCH_PHASES=${BENCH_PHASES:-0}" --env "BENCH_SETTLE_MS=${BENCH_SETTLE_MS:-}" --env "BENCH_WARMUP=${BENCH_WARMUP:-}" --env "BENCH_WINDOW=${BENCH_WINDOW:-}" --env "BENCH_BATCH=${BENCH_BATCH:-}" --env "BENCH_DUMP_SOCKETS=${BENCH_DUMP_SOCKETS:-}" --env "BENCH_STEADY_PROF=${BENCH_STEADY_PROF:-0}" --env "BENCH_FIRST_PROF=${BENCH_FIRST_PROF:-0}" --env "BENCH_TRACE=${BENCH_TRACE:-0}" --env "BENCH_NO_HINT=${BENCH_NO_HINT:-0}" --env "BENCH_V8_DEFAULTS=${BENCH_V8_DEFAULTS:-0}" --env "BENCH_IPVS_RECV_BUFFER=${BENCH_IPVS_RECV_BUFFER:-}" --env "BENCH_V8_FLAGS=${BENCH_V8_FLAGS:-}" --env "BENCH_IPVS_RUN_ESTIMATION=${BENCH_IPVS_RUN_ESTIMATION:-}" --env "BENCH_GC_AFTER_LOAD=${BENCH_GC_AFTER_LOAD:-}" --env "BENCH_GC_FINISH_SWEEPING=${BENCH_GC_FINISH_SWEEPING:-}" -- \
  bash -c "$cmd" | "$repo/bench/applier/emulator-cpu.sh"
exit "${PIPESTATUS[0]}"
