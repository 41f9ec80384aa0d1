import { afterAll, describe, expect, it } from 'vitest';
import { rebuildAtSeq } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { driveDataAxis, randomHistory } from '../eventlog/support/random-history.ts';
import { openLog, steppingClock, tempDir } from '../eventlog/support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const who = { actor: 'test', reason: 'test' };

const service = (name: string, clusterIP: string, rv: number): WatchEvent => ({
  kind: 'Service',
  type: 'MODIFIED',
  origin: 'watch',
  namespace: 'default',
  name,
  uid: `u-${name}`,
  resourceVersion: String(rv),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { clusterIP, ports: [{ port: 80, protocol: 'TCP' }] },
  },
});

describe('DataAxis restore (the checkpoint-aware fold)', () => {
  for (const seed of [3, 21]) {
    it(`seed ${seed}: a restored axis holds exactly the live state, published content, rejections and pin of the one that ran`, async () => {
      const file = tmp.file();
      const log = await openLog(file, steppingClock());
      const ran = DataAxis.restore(log);
      driveDataAxis(log, randomHistory({ seed, steps: 300, pinRate: 0.08 }), { checkpointEvery: 40, axis: ran });
      expect(log.checkpoints().length).toBeGreaterThan(3);
      const restored = DataAxis.restore(log);
      expect(restored.live.hash()).toBe(ran.live.hash());
      expect(restored.publishedHash()).toBe(ran.publishedHash());
      expect(restored.pin).toEqual(ran.pin);
      expect([...restored.rejections.entries()].sort()).toEqual([...ran.rejections.entries()].sort());
      // and the cold scan (every event, no checkpoint) agrees with both
      const cold = rebuildAtSeq(log, log.lastSeq(), { sequential: true, ignoreCheckpoints: true });
      expect(cold.hash).toBe(ran.live.hash());
      expect([...cold.rejections.entries()].sort()).toEqual([...ran.rejections.entries()].sort());
      log.close();
    });
  }

  it('restarts from the latest checkpoint: reads only the objects changed after it, and keeps rejections made before it', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const axis = DataAxis.restore(log);
    let rv = 0;
    for (let i = 0; i < 50; i++) axis.ingest([service(`svc-${i}`, `10.96.0.${i + 1}`, ++rv)]);
    axis.ingest([service('svc-bad', 'not-an-ip', ++rv)]); // rejected, before the checkpoint
    axis.sync();
    axis.checkpointIfDue(1);
    for (let i = 0; i < 30; i++) axis.ingest([service('svc-1', `10.96.1.${(i % 3) + 1}`, ++rv)]); // 30 events, one object
    axis.sync();
    const restored = DataAxis.restore(log);
    expect(restored.live.hash()).toBe(axis.live.hash());
    expect(restored.publishedHash()).toBe(axis.publishedHash());
    expect([...restored.rejections.keys()]).toEqual(['Service/default/svc-bad']);
    const fold = rebuildAtSeq(log, log.lastSeq());
    expect(fold.checkpointSeq).toBe(51);
    expect(fold.eventsApplied).toBe(1); // the deciding event of the one object changed since
    log.close();
  });
});

describe('DataAxis rejections', () => {
  it('counts distinct objects rejected now: a bad object resent three times is one, and none once it is fixed', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const axis = DataAxis.restore(log);
    axis.ingest([service('a', 'not-an-ip', 1)]);
    axis.ingest([service('a', 'not-an-ip', 2), service('b', 'bad', 3)]);
    axis.ingest([service('a', 'not-an-ip', 4)]);
    expect(axis.rejectedCount).toBe(2);
    axis.ingest([service('a', '10.96.0.9', 5)]);
    expect(axis.rejectedCount).toBe(1);
    expect(DataAxis.restore(log).rejectedCount).toBe(1);
    log.close();
  });
});

describe('DataAxis pins', () => {
  it('a pin and its version are written together, and a restart restores the pin', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const axis = DataAxis.restore(log);
    axis.ingest([service('a', '10.96.0.1', 1)]);
    axis.sync();
    axis.ingest([service('a', '10.96.0.2', 2)]);
    axis.sync();
    const held = axis.holdAt(1, 'rollback', who);
    expect(held.version?.record.contentOf).toBe(1);
    expect(held.operation.version).toBe(held.version?.record.version);
    axis.ingest([service('a', '10.96.0.3', 3)]);
    expect(axis.sync()).toBeUndefined(); // held
    const restored = DataAxis.restore(log);
    expect(restored.pin).toEqual({ version: 1, hash: log.version(1)!.hash, kind: 'rollback' });
    expect(restored.sync()).toBeUndefined();
    const released = restored.release(who);
    expect(released.version?.record.hash).toBe(restored.live.hash());
    expect(DataAxis.restore(log).pin).toBeUndefined();
    log.close();
  });
});
