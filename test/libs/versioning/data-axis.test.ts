import { afterAll, describe, expect, it, vi } from 'vitest';
import { EMPTY_POSITION, rebuildAtSeq, verifyLog } from '../../../libs/eventlog/index.ts';
import { applyServicePatch, canonicalJson, contentHash, type WatchEvent } from '../../../libs/model/index.ts';
import { DataAxis, type PreparedEvent } from '../../../libs/versioning/index.ts';
import { driveDataAxis, prng, randomHistory } from '../eventlog/support/random-history.ts';
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

/** Every object and array reachable from v (v included). */
function reachable(v: unknown, into = new Set<object>()): Set<object> {
  if (v === null || typeof v !== 'object' || into.has(v)) return into;
  into.add(v);
  for (const x of Object.values(v)) reachable(x, into);
  return into;
}

describe('DataAxis.prepare (events read ahead of their append, as the planner queues them)', () => {
  for (const seed of [5, 17]) {
    it(`seed ${seed}: prepared, raw or mixed batches make the same log rows, chain, versions, state and rejections; a prepared event keeps none of its raw object`, async () => {
      const steps = [...randomHistory({ seed, steps: 250, pinRate: 0.05 })];
      const rawLog = await openLog(tmp.file(), steppingClock());
      const rawVersions = driveDataAxis(rawLog, steps, { checkpointEvery: 50 });
      const log = await openLog(tmp.file(), steppingClock());
      const axis = DataAxis.restore(log);
      const rnd = prng(seed);
      let prepared = 0;
      const mixed = steps.map((step) => {
        if (!('batch' in step)) return step;
        const batch = step.batch.map((e): WatchEvent | PreparedEvent => {
          if (rnd() < 0.2) return e;
          const p = axis.prepare(e);
          const raw = reachable(e.object);
          expect([...reachable(p)].filter((o) => raw.has(o))).toEqual([]);
          prepared += 1;
          return p;
        });
        return { batch: batch as WatchEvent[] };
      });
      expect(prepared).toBeGreaterThan(100);
      const versions = driveDataAxis(log, mixed, { checkpointEvery: 50, axis });
      expect(versions).toEqual(rawVersions);
      // every row of every table verbatim: ids, times, object texts, chain links
      expect(log.exportRows(EMPTY_POSITION, { whole: true })).toEqual(
        rawLog.exportRows(EMPTY_POSITION, { whole: true }),
      );
      expect(verifyLog(log).ok).toBe(true);
      const fold = (l: typeof log) => rebuildAtSeq(l, l.lastSeq(), { sequential: true, ignoreCheckpoints: true });
      expect(fold(log).hash).toBe(fold(rawLog).hash);
      expect(axis.live.hash()).toBe(fold(rawLog).hash);
      expect([...axis.rejections.entries()].sort()).toEqual([...DataAxis.restore(rawLog).rejections.entries()].sort());
      rawLog.close();
      log.close();
    });
  }

  it('throws what appendEvents would, before anything is written', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const axis = DataAxis.restore(log);
    // a field the log keeps (its projection) that cannot be serialised
    const unserialisable = {
      toJSON: () => {
        throw new Error('no JSON');
      },
    };
    const bad = {
      ...service('a', '10.96.0.1', 1),
      object: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a' }, spec: { ports: unserialisable } },
    };
    expect(() => axis.prepare(bad)).toThrow('no JSON');
    expect(() => axis.prepare({ ...service('a', '10.96.0.1', 1), name: '' })).toThrow(/has no name/);
    expect(() => axis.ingest([service('b', '10.96.0.2', 2), bad])).toThrow('no JSON');
    expect(log.lastSeq()).toBe(0);
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

describe('DataAxis records a version from the texts its entries were hashed from', () => {
  it('serialises each entry of a delta once (for its hash), and stores exactly its canonical JSON', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const axis = DataAxis.restore(log);
    let rv = 0;
    axis.ingest([service('first', '10.96.1.1', ++rv)]);
    axis.sync(); // version 1 (stored without a delta: see below); version 2 is the one looked at
    axis.ingest(Array.from({ length: 20 }, (_, i) => service(`svc-${i}`, `10.96.0.${i + 1}`, ++rv)));
    // canonicalJson serialises an object either natively (JSON.stringify of it, keys already in
    // order, as entries are built) or by listing its keys: count both for the entries.
    const keys = vi.spyOn(Object, 'keys');
    const stringify = vi.spyOn(JSON, 'stringify');
    let made;
    let seen: unknown[];
    try {
      made = axis.sync();
      seen = [...keys.mock.calls, ...stringify.mock.calls].map(([o]) => o);
    } finally {
      keys.mockRestore();
      stringify.mockRestore();
    }
    const entries = new Set<unknown>(made!.delta.upsertServices);
    expect(entries.size).toBe(20);
    const serialisations = seen.filter((o) => entries.has(o)).length;
    expect(serialisations).toBe(20); // once each: hashed and recorded from the same text
    expect(storedDelta(log, made!.record.version)).toBe(canonicalJson(made!.delta));
    // the same texts go to the bus for its checkpoint, which is plain JSON: each is JSON.stringify's too
    for (const e of made!.delta.upsertServices) expect(made!.texts?.get(e)).toBe(JSON.stringify(e));
    // a second batch records its own entries' texts, not the first batch's; stored bit for bit canonical
    axis.ingest([service('svc-3', '10.96.9.9', ++rv), service('svc-4', '10.96.9.8', ++rv)]);
    const second = axis.sync()!;
    expect(log.versionDelta(second.record.version)).toEqual(second.delta);
    expect(storedDelta(log, second.record.version)).toBe(canonicalJson(second.delta));
    log.close();
  });
});

/** The delta column as stored. */
function storedDelta(log: unknown, version: number): string | null {
  const db = (log as { db: { prepare(s: string): { get(v: number): { delta: string | null } } } }).db;
  return db.prepare('SELECT delta FROM versions WHERE version = ?').get(version).delta;
}

describe('DataAxis: the first version is not stored a second time as its delta', () => {
  it('version 1 keeps no delta (its content is the events up to it); deltaOf rebuilds exactly the one published', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const axis = DataAxis.restore(log);
    let rv = 0;
    axis.ingest(Array.from({ length: 12 }, (_, i) => service(`svc-${i}`, `10.96.0.${i + 1}`, ++rv)));
    const first = axis.sync()!;
    expect(first.record.version).toBe(1);
    expect(first.delta.upsertServices).toHaveLength(12);
    expect(storedDelta(log, 1)).toBeNull();
    expect(axis.deltaOf(1)).toEqual(first.delta);
    axis.ingest([service('svc-3', '10.96.9.9', ++rv)]);
    const second = axis.sync()!;
    expect(storedDelta(log, 2)).toBe(canonicalJson(second.delta)); // later versions keep theirs
    expect(axis.deltaOf(2)).toEqual(second.delta);
    // after a restart, from the log alone
    log.close();
    const reopened = await openLog(log.file, steppingClock());
    expect(DataAxis.restore(reopened).deltaOf(1)).toEqual(first.delta);
    reopened.close();
  });
});

describe('DataAxis: the latest version and its content come from one snapshot', () => {
  it("a view restored before the log gained version 2 (a follower between the replicated log's import and its refresh) still says version 1 with version 1's content", async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const leader = DataAxis.restore(log);
    let rv = 0;
    leader.ingest([service('a', '10.96.0.1', ++rv)]);
    const v1 = leader.sync()!.record;
    const view = DataAxis.restore(log); // the follower's view, not refreshed after this
    leader.ingest([service('a', '10.96.0.2', ++rv)]);
    const v2 = leader.sync()!.record;
    expect(log.latestVersion()?.version).toBe(2); // the rows are in the log
    // probe3 U1: latest() read the log live (2) while publishedData() was the snapshot's (1's)
    expect(view.latest()).toEqual(v1);
    expect(view.publishedData().hash()).toBe(view.latest()!.hash);
    expect(view.contentOf(2).hash()).toBe(v2.hash); // rebuilt from the log, not the snapshot's content
    expect(view.contentOf(1).hash()).toBe(v1.hash);
    expect(DataAxis.restore(log).latest()).toEqual(v2); // refreshed: both move together
    expect(leader.latest()).toEqual(v2);
    log.close();
  });
});

describe('DataAxis: versions tell large services as patches too', () => {
  const slice = (ready: (i: number) => boolean, rv: number): WatchEvent => ({
    kind: 'EndpointSlice',
    type: 'MODIFIED',
    origin: 'watch',
    namespace: 'default',
    name: 'big-1',
    uid: 'u-big-1',
    resourceVersion: String(rv),
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      addressType: 'IPv4',
      metadata: { name: 'big-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'big' } },
      ports: [{ name: '', protocol: 'TCP', port: 8080 }],
      endpoints: Array.from({ length: 300 }, (_, i) => ({
        addresses: [`10.244.${i >> 8}.${i & 255}`],
        conditions: { ready: ready(i) },
        nodeName: 'n1',
      })),
    },
  });

  it('one endpoint of 300 changes: the version carries its patch, which rebuilds the entry published; small services go whole', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const axis = DataAxis.restore(log);
    axis.ingest([service('big', '10.96.0.10', 1), slice(() => true, 2), service('small', '10.96.0.11', 3)]);
    const first = axis.sync()!;
    expect(first.patches).toBeUndefined(); // version 1 is the whole cluster, published as a checkpoint
    const before = first.delta.upsertServices.find((e) => e.key === 'default/big')!;
    expect(before.ports[0]!.endpoints).toHaveLength(300);

    axis.ingest([slice((i) => i !== 7, 4), service('small', '10.96.0.12', 5)]);
    const made = axis.sync()!;
    expect(made.delta.upsertServices.map((e) => e.key).sort()).toEqual(['default/big', 'default/small']);
    expect(made.patches?.map((p) => p.key)).toEqual(['default/big']);
    const p = made.patches![0]!;
    expect(p.ports.map((q) => q.upsert.length + q.remove.length)).toEqual([1]);
    const after = made.delta.upsertServices.find((e) => e.key === 'default/big')!;
    expect(applyServicePatch(before, p)).toEqual(after);
    expect(p.base).toBe(contentHash(before));
    expect(p.hash).toBe(contentHash(after));

    // a change to the small service alone makes no patch
    axis.ingest([service('small', '10.96.0.13', 6)]);
    expect(axis.sync()!.patches).toBeUndefined();
    log.close();
  });
});
