// DataAxis.syncSteps (probe10 H9): the version build in bounded steps, so the planner can yield to
// its event loop (lease, heartbeats, GET /status) during a build of 100 000 endpoints. Each version
// must be the one sync() makes, bit for bit, and rebuilt so by replay; nothing may change the axis
// between its steps.
import { afterAll, describe, expect, it } from 'vitest';
import { rebuildAtSeq, replayVersion, verifyLog, type EventLog } from '../../../libs/eventlog/index.ts';
import { canonicalJson, type WatchEvent } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
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
    spec: { clusterIP, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  },
});
/** Slice `s` of `svc`: 1 000 endpoints (the most a slice may hold), `shift` moving their addresses. */
const slice = (svc: string, s: number, rv: number, shift = 0): WatchEvent => ({
  kind: 'EndpointSlice',
  type: 'MODIFIED',
  origin: 'watch',
  namespace: 'default',
  name: `${svc}-${s}`,
  uid: `u-${svc}-${s}`,
  resourceVersion: String(rv),
  object: {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    addressType: 'IPv4',
    metadata: { name: `${svc}-${s}`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: Array.from({ length: 1000 }, (_, i) => {
      const k = s * 1000 + i + shift;
      return {
        addresses: [`10.${1 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`],
        conditions: { ready: k % 7 !== 0 },
        nodeName: `node-${k % 3}`,
      };
    }),
  },
});

/** Three changes: a service of 20 000 endpoints; half its slices moved and a small service; the small one gone. */
function history(): WatchEvent[][] {
  let rv = 0;
  return [
    [service('big', '10.96.0.10', ++rv), ...Array.from({ length: 20 }, (_, s) => slice('big', s, ++rv))],
    [...Array.from({ length: 10 }, (_, s) => slice('big', s * 2, ++rv, 500)), service('small', '10.96.0.11', ++rv)],
    [{ ...service('small', '10.96.0.11', ++rv), type: 'DELETED' }],
  ];
}

/** Every version as the log holds it: its record, its delta's text, and its content rebuilt by replay. */
function versionsOf(log: EventLog) {
  return log.versions().map((v) => {
    const delta = log.versionDelta(v.version);
    return { ...v, delta: delta && canonicalJson(delta), replayed: replayVersion(log, v.version).hash };
  });
}

describe('DataAxis.syncSteps', () => {
  it('makes the versions sync() makes, bit for bit (records, stored deltas, replay), in many steps for a large service', async () => {
    const [oneLog, steppedLog] = [
      await openLog(tmp.file(), steppingClock()),
      await openLog(tmp.file(), steppingClock()),
    ];
    const [one, stepped] = [DataAxis.restore(oneLog), DataAxis.restore(steppedLog)];
    const steps: number[] = [];
    for (const batch of history()) {
      one.ingest(batch);
      one.sync();
      stepped.ingest(batch);
      const it = stepped.syncSteps();
      let n = 0;
      while (!it.next().done) n++;
      steps.push(n);
    }
    const made = versionsOf(steppedLog);
    expect(made.map((v) => v.version)).toEqual([1, 2, 3]);
    expect(made).toEqual(versionsOf(oneLog));
    for (const v of made) expect(v.replayed).toBe(v.hash);
    expect(stepped.publishedHash()).toBe(one.publishedHash());
    // 20 000 endpoints read 2 000 a step, and serialised ~1 000 a step: dozens of steps, not one
    expect(steps[0]).toBeGreaterThanOrEqual(20);
    expect(steps[1]).toBeGreaterThanOrEqual(20);
    oneLog.close();
    steppedLog.close();
  });

  it('refuses any other change between its steps, and the build it was in the middle of ends as if alone', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const axis = DataAxis.restore(log);
    const [first, second] = history();
    axis.ingest(first!);
    axis.sync();
    axis.ingest(second!);
    const it = axis.syncSteps();
    it.next();
    it.next(); // under way
    expect(() => axis.ingest([service('late', '10.96.0.12', 1000)])).toThrow(/while a version build is under way/);
    expect(() => axis.syncSteps().next()).toThrow(/while a version build is under way/);
    expect(() => axis.holdAt(1, 'pin', who)).toThrow(/while a version build is under way/);
    expect(() => axis.release(who)).toThrow(/while a version build is under way/);
    expect(() => axis.checkpointIfDue(1)).toThrow(/while a version build is under way/);
    expect(axis.latest()?.version).toBe(1); // nothing published before its last step
    let r = it.next();
    while (!r.done) r = it.next();
    expect(r.value?.record.version).toBe(2);
    expect(replayVersion(log, 2).hash).toBe(r.value?.record.hash);
    expect(log.lastSeq()).toBe(r.value?.record.seqTo); // the refused event was never written
    axis.ingest([service('late', '10.96.0.12', 1000)]); // and once it ended, changes go on
    expect(axis.sync()?.record.version).toBe(3);
    log.close();
  });

  it('writes its checkpoint in steps (checkpointIfDueSteps): the row one call writes, and no change between its steps', async () => {
    const [first, second] = history();
    const axes = [];
    for (let i = 0; i < 2; i++) {
      const log = await openLog(tmp.file(), steppingClock());
      const axis = DataAxis.restore(log);
      axis.ingest(first!);
      axis.sync();
      axis.ingest(second!);
      axis.sync();
      axes.push({ log, axis });
    }
    const [oneCall, stepped] = axes as [(typeof axes)[0], (typeof axes)[0]];
    oneCall.axis.checkpointIfDue(1);
    const it = stepped.axis.checkpointIfDueSteps(1);
    let steps = 0;
    let r = it.next();
    // 20 000 endpoints, ~2.6 MB of JSON: ~10 steps of 256 K characters
    expect(r.done).toBe(false);
    expect(() => stepped.axis.ingest([service('late', '10.96.0.12', 1000)])).toThrow(
      /while a checkpoint is being written/,
    );
    expect(() => stepped.axis.syncSteps().next()).toThrow(/while a checkpoint is being written/);
    expect(() => stepped.axis.holdAt(1, 'pin', who)).toThrow(/while a checkpoint is being written/);
    expect(stepped.log.checkpoints()).toEqual([]); // nothing stored before its last step
    while (!r.done) {
      steps++;
      r = it.next();
    }
    expect(steps).toBeGreaterThanOrEqual(8);
    // the same checkpoint (its objects' hash checked by a deep verify; the stored bytes are
    // checkpoint-pieces.test.ts's), and a restore starts from it
    expect(stepped.log.checkpoints()).toEqual(oneCall.log.checkpoints());
    expect(stepped.log.checkpoints()).toHaveLength(1);
    expect(verifyLog(stepped.log, { deep: true })).toMatchObject({ ok: true, rowsChecked: { checkpoints: 1 } });
    const seq = stepped.log.lastSeq();
    expect(rebuildAtSeq(stepped.log, seq)).toMatchObject({ checkpointSeq: seq });
    expect(rebuildAtSeq(stepped.log, seq).state.hash()).toBe(rebuildAtSeq(oneCall.log, seq).state.hash());
    stepped.axis.ingest([service('late', '10.96.0.12', 1000)]); // and once it ended, changes go on
    expect(stepped.axis.sync()?.record.version).toBe(3);
    for (const { log } of axes) log.close();
  });
});
