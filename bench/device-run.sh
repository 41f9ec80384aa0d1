#!/usr/bin/env bash
# The fan-out and ingestion benches on the accelerator machine the `device` tool lends (16 cores,
# no package registry, no node): issue 15 asks for the fan-out ratio measured where the appliers
# are not starved of cores. Two steps:
#
#   here:   bash bench/device-run.sh pack            # node, nats-server and the bundles → .cache/device/
#   device: run(command="bash bench/device-run.sh measure", carry=[".cache/device"])
#
# `pack` bundles the benches with every npm package inlined (bench/build-portable.mjs) and packs
# this machine's node and nats-server binaries, compressed, so the same versions run there.
# `measure` unpacks them under /tmp/sb and runs each bench with its own time limit, most important
# first; every result goes into one archive, $OUT/results.tgz (the tool returns at most 8 files),
# refreshed after each step so a run cut short keeps what it finished. SMALL=1 runs tiny sizes (a
# check of the script itself, here).
set -uo pipefail
cd "$(dirname "$0")/.."
PACK=.cache/device

pack() {
  rm -rf "$PACK" && mkdir -p "$PACK"
  local tmp
  tmp=$(mktemp -d)
  node bench/build-portable.mjs "$tmp/portable" bench/fanout/run-fanout.ts bench/fanout/fanout-worker.ts \
    bench/ingest/ingest-bench.ts bench/ingest/planner-child.ts bench/ingest/baseline-child.ts
  tar -C "$tmp" -cJf "$PACK/portable.tar.xz" portable
  xz -T0 -6 -c "$(command -v node)" >"$PACK/node.xz"
  gzip -9 -c "${NATS_SERVER_BIN:-/usr/sbin/nats-server}" >"$PACK/nats-server.gz"
  rm -rf "$tmp"
  du -sh "$PACK"/*
}

measure() {
  local out=${OUT:-/tmp/sb-out} sb=/tmp/sb
  local res=$sb/results
  rm -rf "$sb" && mkdir -p "$sb/bin" "$res" "$out"
  # unpack: xz may be missing there; Python's lzma is not
  xz -dc "$PACK/node.xz" >"$sb/bin/node" 2>/dev/null ||
    python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$PACK/node.xz" "$sb/bin/node"
  gzip -dc "$PACK/nats-server.gz" >"$sb/bin/nats-server"
  chmod +x "$sb/bin/node" "$sb/bin/nats-server"
  (xz -dc "$PACK/portable.tar.xz" 2>/dev/null ||
    python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
      "$PACK/portable.tar.xz") | tar -C "$sb" -xf -
  export PATH="$sb/bin:$PATH" NATS_SERVER_BIN="$sb/bin/nats-server"
  local p=$sb/portable log=$res/log.txt
  {
    date -u
    echo "nproc $(nproc)"
    grep -m1 'model name' /proc/cpuinfo
    free -g | head -2
    node --version
    nats-server --version
    uptime
  } >"$res/facts.txt" 2>&1
  save() { tar -C "$sb" -czf "$out/results.tgz" results; cp "$log" "$out/log.txt" 2>/dev/null; }
  # step NAME LIMIT_S COMMAND...: one bench, its output in NAME.txt, the load before and after
  step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log"
    (cd "$p" && timeout "$limit" "$@") >"$res/$name.txt" 2>&1
    echo "== $name rc=$? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log"
    save
  }
  local W=${FANOUT_WORKERS:-12} small=${SMALL:-0}
  local big=1000 mid=300 s=10000 warm=3000
  [ "$small" = 1 ] && big=40 mid=30 s=500 warm=200
  fan() { # fan NAME LIMIT ARGS...: run-fanout with the bundled workers
    local name=$1 limit=$2
    shift 2
    step "$name" "$limit" node run-fanout.mjs --events 30 --worker-script "$p/fanout-worker.mjs" \
      --out "$res/$name.json" "$@"
  }
  local r
  for r in 1 2 3; do
    fan "fanout-warm-w$W-$r" 150 --nodes "100,$big" --workers "$W" --warmup "$warm" --applier-v8 1
  done
  for r in 1 2 3; do
    step "ingest-$r" 120 node ingest-bench.mjs --services "$s" --endpoints 10 --nodes 100 --rounds 1 \
      --bursts 0 --steady 0 --children-dir "$p" --out "$res/ingest-$r.json"
  done
  fan "fanout-warm-w$W-$mid" 90 --nodes "$mid" --workers "$W" --warmup "$warm" --applier-v8 1
  fan "fanout-cold-w$W" 120 --nodes "100,$big" --workers "$W" --warmup 0 --applier-v8 0
  fan "fanout-warm-w4" 150 --nodes "100,$big" --workers 4 --warmup "$warm" --applier-v8 1
  echo "== all done $(date -u +%T)" >>"$log"
  save
}

case "${1:-}" in
  pack) pack ;;
  measure) measure ;;
  *)
    echo "usage: bash bench/device-run.sh pack|measure" >&2
    exit 2
    ;;
esac
