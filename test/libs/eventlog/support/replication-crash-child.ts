// Child process for the replication crash test: leads a group's log on a real nats-server, writes
// and flushes a random history, then commits one more write batch locally and SIGKILLs itself
// before flushing it (the window between local commit and stream append), with the informer's
// resume point saved past the group's (the append writes it in its transaction, as the planner's
// does). Its last flush comes more than a second after the claim, so it persists the replication
// mark: a restart reads no batch before it truncates. It prints the position the stream
// acknowledged last and the local one it died with. Usage: FILE NATS_URL GROUP
import { connect } from '@nats-io/transport-node';
import { EventLog, createLogReplicator, rowCount } from '../../../../libs/eventlog/index.ts';
import { writeHistory } from './replicated-history.ts';

const [file, url, group] = process.argv.slice(2) as [string, string, string];
const log = await EventLog.open({ file, sync: 'full' });
const nc = await connect({ servers: url });
const r = await createLogReplicator({ log, nc, group, replicas: 1, id: 'crash-child' });
await r.claim(1);
await writeHistory(log, { seed: 21, steps: 12, after: () => r.flush() });
await new Promise((res) => setTimeout(res, 1100)); // the mark is persisted at most once a second
await writeHistory(log, { seed: 22, steps: 1, after: () => r.flush() });
const acked = log.position();
const ackedResume = log.resumeStore().load('Service');
log.resumeStore().save('Service', '777');
log.appendEvents([
  {
    kind: 'Node',
    type: 'ADDED',
    origin: 'watch',
    namespace: '',
    name: 'unflushed',
    uid: 'u-unflushed',
    resourceVersion: '777',
    object: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'unflushed' } },
  },
]);
log.recordOperation({ kind: 'pin', actor: 'crash-child', reason: 'committed, never flushed', params: {} } as never);
process.stdout.write(
  `${JSON.stringify({ acked, ackedResume, ackedRows: rowCount(acked), localRows: rowCount(log.position()) })}\n`,
  () => {
    process.kill(process.pid, 'SIGKILL');
  },
);
