// Child process for the crash-injection test: builds a small history in a real SQLite log, prints
// the planner's operator state ("before"), then runs one operation through the real axes with the
// log wrapped so that its K-th write call SIGKILLs the process before it runs (K past the last
// write: the operation completes and the child prints "after"). Usage: crash-child.ts FILE OP K
import { EventLog } from '../../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../../libs/model/index.ts';
import { ConfigAxis, DataAxis } from '../../../../libs/versioning/index.ts';
import { operatorState } from './operator-state.ts';

const [file, op, kText] = process.argv.slice(2) as [string, string, string];
const killAt = Number(kText);
const WRITES = new Set([
  'appendEvents',
  'recordVersion',
  'recordOperation',
  'recordConfigRevision',
  'checkpoint',
  'recordAck',
]);
let armed = false;
let writes = 0;
const real = await EventLog.open({ file, sync: 'full' });
// Write methods are shadowed on the instance itself (not a Proxy): libs/eventlog keys its private
// SQLite handle by the EventLog object, so the axes must hold the real instance.
const log = real;
for (const name of WRITES) {
  const method = (real as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
  if (typeof method !== 'function') throw new Error(`EventLog has no write method ${name}`);
  Object.defineProperty(real, name, {
    configurable: true,
    value: (...args: unknown[]) => {
      if (armed && writes++ === killAt) process.kill(process.pid, 'SIGKILL');
      return method.apply(real, args);
    },
  });
}
const who = { actor: 'crash-test', reason: op };
const service = (ip: string, rv: number): WatchEvent => ({
  kind: 'Service',
  type: 'MODIFIED',
  origin: 'watch',
  namespace: 'default',
  name: 'web',
  uid: 'u-web',
  resourceVersion: String(rv),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default' },
    spec: { clusterIP: ip, ports: [{ port: 80, protocol: 'TCP' }] },
  },
});

const data = DataAxis.restore(log);
const config = ConfigAxis.restore(log, { mode: 'ipvs' } as Parameters<typeof ConfigAxis.restore>[1]);
data.ingest([service('10.96.0.1', 1)]);
data.sync();
data.ingest([service('10.96.0.2', 2)]);
data.sync();
const rollout = {
  waves: [{ kind: 'count' as const, n: 1 }],
  nodes: ['n1', 'n2'],
  notCanary: new Map(),
  pauseOnError: true,
};
if (op === 'unpin') data.holdAt(1, 'pin', who);
if (op === 'config-rollback') config.newRevision({ mode: 'nftables' }, who, 'mode', rollout);
process.stdout.write(`before ${JSON.stringify(operatorState(real))}\n`);

armed = true;
if (op === 'pin') data.holdAt(1, 'pin', who);
else if (op === 'rollback') data.holdAt(1, 'rollback', who);
else if (op === 'unpin') data.release(who);
else if (op === 'config-rollout') config.newRevision({ mode: 'nftables' }, who, 'mode', rollout);
else if (op === 'config-rollback') config.rollback(undefined, who);
else throw new Error(`unknown op ${op}`);
armed = false;
process.stdout.write(`after ${JSON.stringify(operatorState(real))} writes ${writes}\n`);
real.close();
