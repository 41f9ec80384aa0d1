#!/usr/bin/env bash
# The demo: a local Switchboard cluster on embedded defaults. A real nats-server (JetStream) on a
# free loopback port, the planner on a copy of examples/demo with a SQLite event log, and two
# appliers in dry-run mode (full protocol, kernel untouched). It then changes the cluster, pins,
# unpins, replays and audits, and cleans everything up. Installs what it needs by itself.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export PATH="$PATH:/usr/sbin:/sbin"
if ! command -v nats-server >/dev/null || [ ! -d node_modules/better-sqlite3/build ]; then bash scripts/install-deps.sh; fi
node scripts/build.mjs --if-stale # bin/switchboard runs dist/ (docs/packaging.md)

sb() { "$repo/bin/switchboard" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
work="$(mktemp -d /tmp/switchboard-demo.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

cp -r examples/demo "$work/manifests"
nats_port=$(free_port); http_port=$(free_port)
nats="nats://127.0.0.1:$nats_port"; api="http://127.0.0.1:$http_port"

say "plan for node-a from the manifests (ipvsadm -Sn form; the malformed Service is rejected alone)"
sb plan --manifests "$work/manifests" --node node-a --format ipvsadm

say "starting nats-server (JetStream) on $nats, the planner (API $api) and two dry-run appliers"
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/jetstream" >"$work/nats.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
# Started directly (not through the sb function) so $! is the process itself and cleanup reaches it.
"$repo/bin/switchboard" planner --manifests "$work/manifests" --nats "$nats" --db "$work/switchboard.db" --http "127.0.0.1:$http_port" >"$work/planner.log" 2>&1 & pids+=($!)
for node in node-a node-b; do
  "$repo/bin/switchboard" applier --node "$node" --nats "$nats" --mode dry-run --state-dir "$work/state-$node" --heartbeat 1000 >"$work/applier-$node.log" 2>&1 & pids+=($!)
done

# Waits until every node reports SYNCED at the planner's latest version.
wait_synced() {
  # generous: the first start of each process compiles TypeScript (slow on a loaded machine)
  for _ in $(seq 360); do
    if out=$(sb ctl --server "$api" status --json 2>/dev/null) &&
      node -e 'const s=JSON.parse(process.argv[1]); const n=s.nodes??s; process.exit(n.length>=2 && n.every(x=>x.status==="SYNCED")?0:1)' "$out"; then
      return 0
    fi
    sleep 0.5
  done
  echo "demo: nodes did not reach SYNCED; logs in $work" >&2
  tail -n 20 "$work"/*.log >&2
  return 1
}
wait_synced
say "ctl status"
sb ctl --server "$api" status
say "ctl versions"
sb ctl --server "$api" versions

say "an endpoint is added to default/web (a new EndpointSlice file) → one new version, every node ACKs it"
cat >"$work/manifests/web-more.yaml" <<'YAML'
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-more, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 9000, protocol: TCP}]
endpoints:
  - {addresses: [10.50.1.7], nodeName: node-a, conditions: {ready: true}}
YAML
for _ in $(seq 60); do [ "$(sb ctl --server "$api" versions --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);const a=v.versions??v;console.log(a.length)})')" -ge 2 ] && break; sleep 0.5; done
wait_synced
sb ctl --server "$api" versions
say "ctl diff 1 2"
sb ctl --server "$api" diff 1 2

say "pin the cluster to version 1's content (published as a new version), then unpin"
sb ctl --server "$api" --actor demo pin --version 1 --reason "demo: hold while investigating"
wait_synced
sb ctl --server "$api" --actor demo unpin --reason "demo: done"
wait_synced
sb ctl --server "$api" versions

say "replay every version from the event log: the hashes must equal the recorded ones"
latest=$(sb ctl --server "$api" versions --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);const a=v.versions??v;console.log(Math.max(...a.map(x=>x.version)))})')
for v in $(seq 1 "$latest"); do sb replay --db "$work/switchboard.db" --to-version "$v"; done

say "audit: history of default/web, what node-a runs, who did what"
sb audit --db "$work/switchboard.db" service default/web
sb audit --db "$work/switchboard.db" node node-a
sb audit --db "$work/switchboard.db" ops
say "db verify (hash chain over every row)"
sb db verify --db "$work/switchboard.db"
say "done; stopping everything"
