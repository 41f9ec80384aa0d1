// Child process for the pieced-checkpoint crash test: fills a log with NODES Nodes carrying a
// 40 KB annotation each (~100 M characters of checkpoint JSON: several 32 Mi-character pieces),
// then forever appends one event and checkpoints the state, as the planner does. Started again on
// the same log, it rebuilds the state from the log and goes on. It prints
// "writing <seq>" before each checkpoint and "written <seq> <ms>" after it committed; the parent
// SIGKILLs it in the middle of one.
import { EventLog, rebuildAtSeq } from '../../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../../libs/model/index.ts';
import { ClusterState, watchEventChange } from '../../../../libs/planner/index.ts';

const [file, nodesText] = process.argv.slice(2);
const NODES = Number(nodesText);
const pad = 'a'.repeat(40_000);
const nodeEvent = (i: number, type: 'ADDED' | 'MODIFIED', rev: number): WatchEvent => ({
  kind: 'Node',
  type,
  origin: 'watch',
  namespace: '',
  name: `node-${i}`,
  uid: `node-${i}`,
  resourceVersion: String(rev),
  object: {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: `node-${i}`, labels: { rev: String(rev) }, annotations: { pad } },
    status: { addresses: [{ type: 'InternalIP', address: `172.16.${i >> 8}.${i & 255}` }] },
  },
});

const log = await EventLog.open({ file: file! });
const resumed = log.lastSeq() > 0;
const state = resumed ? rebuildAtSeq(log, log.lastSeq()).state : new ClusterState();
const append = (events: WatchEvent[]) => {
  log.appendEvents(events);
  for (const e of events) {
    const o = watchEventChange(e);
    if (!('change' in o)) throw new Error(`child: ${o.rejected}`);
    state.apply(o.change);
  }
  state.commit();
};
let rev = log.lastSeq();
for (let i = 0; !resumed && i < NODES; i += 100)
  append(Array.from({ length: Math.min(100, NODES - i) }, (_, k) => nodeEvent(i + k, 'ADDED', ++rev)));
for (;;) {
  append([nodeEvent(rev % NODES, 'MODIFIED', ++rev)]);
  const seq = log.lastSeq();
  process.stdout.write(`writing ${seq}\n`);
  const t = performance.now();
  log.checkpoint(state);
  process.stdout.write(`written ${seq} ${Math.round(performance.now() - t)}\n`);
}
