#!/bin/bash
# One endpoint change of a 5,000-endpoint service: the bytes the node receives for it (the
# server's out_bytes to the applier's connection), and the applier's "applied" line.
# Real nats-server (monitoring on), planner from manifests, one dry-run applier (signed).
set -u
# REPO: the checkout to run (default: this one), e.g. a worktree of an older commit for "before".
# APPLIER_REPO (absolute): another checkout whose applier to run instead (release skew: an older
# applier under this planner), built (npm run build) like REPO.
cd "${REPO:-$(dirname "$0")/../..}"
D=$(mktemp -d)
free() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PORT=$(free); MPORT=$(free)
nats-server -a 127.0.0.1 -p $PORT -m $MPORT -js -sd $D/js > $D/nats.log 2>&1 & NATS=$!
mkdir $D/m
gen() { python3 - "$D/m/c.yaml" "$1" <<'PY'
import sys
out, moved = sys.argv[1], int(sys.argv[2])
docs = ["apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses: [{type: InternalIP, address: 10.99.0.10}]\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: default}\nspec:\n  clusterIP: 10.100.0.1\n  ports: [{name: http, port: 80, protocol: TCP, targetPort: 9000}]\n"]
for s in range(50):
    eps = []
    for i in range(100):
        n = s * 100 + i
        ip = f"10.{200 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}" if not (moved and n == 777) else "10.250.0.1"
        eps.append(f"  - addresses: [{ip}]\n    conditions: {{ready: true}}\n    nodeName: n1\n")
    docs.append(f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: big-{s}, namespace: default, labels: {{kubernetes.io/service-name: big}}}}\naddressType: IPv4\nports: [{{name: http, port: 9000, protocol: TCP}}]\nendpoints:\n" + "".join(eps))
open(out + ".tmp", "w").write("---\n".join(docs)); import os; os.rename(out + ".tmp", out)
PY
}
gen 0
sleep 0.5
bin/switchboard planner --manifests $D/m --nats nats://127.0.0.1:$PORT --db $D/p.db --signing-key $D/key > $D/planner.log 2>&1 & P=$!
for i in $(seq 100); do [ -f $D/key.pub ] && break; sleep 0.2; done
${APPLIER_REPO:-.}/bin/switchboard applier --node n1 --nats nats://127.0.0.1:$PORT --mode dry-run --planner-key $D/key.pub > $D/applier.log 2>&1 & A=$!
waitack() { for i in $(seq 300); do grep -q "\"version\":$1,.*\"msg\":\"applied\"" $D/applier.log && return 0; sleep 0.2; done; return 1; }
connz() { curl -s "http://127.0.0.1:$MPORT/connz?limit=100" | python3 -c 'import json,sys;c=[x for x in json.load(sys.stdin)["connections"] if "n1" in (x.get("name") or "")];print(c[0]["out_bytes"], c[0]["out_msgs"])'; }
waitack 1 || echo "no ack 1"
sleep 2
B=$(connz)
gen 1
waitack 2 || echo "no ack 2"
sleep 2
AF=$(connz)
echo "before: $B  after: $AF"
python3 -c "b=list(map(int,'$B'.split()));a=list(map(int,'$AF'.split()));print('node inbound for version 2:',a[0]-b[0],'bytes in',a[1]-b[1],'messages')"
grep -a '"version":2' $D/applier.log | head -3 | cut -c1-400
echo "applier warnings and errors: $(grep -ac '"level":[456]0' $D/applier.log)"
grep -a '"level":[456]0' $D/applier.log | head -3 | cut -c1-300
kill $A $P; wait $A $P 2>/dev/null; kill $NATS; wait $NATS 2>/dev/null
rm -rf $D
