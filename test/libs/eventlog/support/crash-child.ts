// Child process for the crash test: appends batches of BATCH events forever and prints
// "acked <lastSeq>" after each commit returned. The parent SIGKILLs it mid-run. A third argument
// "hold" holds WAL checkpoints first (as a planner's initial list does).
import { EventLog } from '../../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../../libs/model/index.ts';

const [file, batchText, mode] = process.argv.slice(2);
const BATCH = Number(batchText);
const log = await EventLog.open({ file: file! });
if (mode === 'hold') log.holdWalCheckpoints();
let n = 0;
for (;;) {
  const batch: WatchEvent[] = Array.from({ length: BATCH }, () => {
    const name = `svc-${++n}`;
    return {
      kind: 'Service',
      type: 'ADDED',
      origin: 'watch',
      namespace: 'default',
      name,
      uid: name,
      resourceVersion: String(n),
      object: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: 'default' },
        spec: { clusterIP: '10.0.0.1', ports: [{ port: 80 }] },
        pad: 'x'.repeat(2000),
      },
    };
  });
  const seqs = log.appendEvents(batch);
  process.stdout.write(`acked ${seqs[seqs.length - 1]}\n`);
}
