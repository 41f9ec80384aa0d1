import { afterAll, describe, expect, it } from 'vitest';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import type { EventLogError } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { nodeEvent } from './support/node-event.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// The informer's resume points must never be durable past events the log lacks: a restarted
// informer WATCHes from there (no LIST, no diff), so an event it skips — a Service's DELETED — is
// never seen again and the planner publishes the deleted Service until a 410 relist.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** A Service DELETED whose row needs new pages (a 20 kB annotation). */
const bigDeleted = (rv: number): WatchEvent => ({
  kind: 'Service',
  type: 'DELETED',
  origin: 'watch',
  namespace: 'default',
  name: 'a',
  uid: 'u-a',
  resourceVersion: String(rv),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'a',
      namespace: 'default',
      uid: 'u-a',
      resourceVersion: String(rv),
      annotations: { note: 'x'.repeat(20_000) },
    },
    spec: {
      type: 'ClusterIP',
      clusterIP: '10.96.0.1',
      clusterIPs: ['10.96.0.1'],
      ports: [{ port: 80, protocol: 'TCP' }],
    },
  },
});

/** The Node resume point as stored (another connection would read the same). */
const stored = async (file: string): Promise<string | undefined> => {
  const log = await openLog(file);
  try {
    return log.resumeStore().load('Node');
  } finally {
    log.close();
  }
};

describe('informer resume points (real SQLite files)', () => {
  it('disk full, then close(): the saved resourceVersion of an event that was never written is not persisted', async () => {
    const file = tmp.file();
    const log = await openLog(file);
    const rs = log.resumeStore();
    rs.save('Node', '4');
    log.appendEvents([nodeEvent('n1', 4)]); // durable together
    const db = databaseOf(log);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`); // the disk is full
    rs.save('Node', '5'); // the informer saves once the batcher queued the event
    let err: unknown;
    try {
      log.appendEvents([bigDeleted(5)]);
    } catch (e) {
      err = e;
    }
    expect((err as EventLogError).code).toBe('DISK_FULL');
    log.close(); // a stop: the failed event stays unwritten, and so must its resume point
    expect(await stored(file)).toBe('4');
  });

  it('pending saves do not outlive a truncation or an import: the next append does not write them over the group’s', async () => {
    const a = await openLog(tmp.file());
    a.resumeStore().save('Node', '1');
    a.appendEvents([nodeEvent('n1', 1)]);
    const at = a.position();
    a.resumeStore().save('Node', '2');
    a.appendEvents([nodeEvent('n2', 2)]); // committed here, never in the group's log
    a.resumeStore().save('Node', '3'); // the stopped informer's last save: its event was never appended
    const group = [['Node', '1', '2025-01-01T00:00:00.000Z']];
    a.truncateTo(at, { stream: 's', streamSeq: 1, reason: 'test', resumePoints: group });
    expect(a.resumeStore().load('Node')).toBe('1');
    a.appendEvents([nodeEvent('n9', 9)]); // the next leader's first append (its informer saved nothing yet)
    expect(a.resumeStore().load('Node')).toBe('1');
    // Without the group's resume points, a truncation keeps none (the informer relists).
    a.truncateTo(at, { stream: 's', streamSeq: 1, reason: 'test' });
    expect(a.resumeStore().load('Node')).toBeUndefined();

    a.resumeStore().save('Node', '10');
    a.appendEvents([nodeEvent('n10', 10)]);
    const bFile = tmp.file();
    const b = await openLog(bFile);
    b.resumeStore().save('Node', '7'); // pending from an informer whose event was never appended
    b.importRows(a.exportRows(b.position()));
    expect(b.resumeStore().load('Node')).toBe('10'); // the batch's
    b.appendEvents([nodeEvent('n11', 11)]);
    expect(await stored(bFile)).toBe('10');
    for (const x of [a, b]) x.close();
  });
});
