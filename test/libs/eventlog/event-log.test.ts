import fs from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  EventAppender,
  EventLog,
  EventLogError,
  compactLog,
  nodeAt,
  nodesBehind,
  nodesOfNewestVersion,
  replayAt,
  replayVersion,
  verifyLog,
  versionArtifact,
} from '../../../libs/eventlog/index.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { ClusterDataIndex } from '../../../libs/planner/index.ts';
import type { Ack, Nack, WatchEvent } from '../../../libs/model/index.ts';
import { driveDataAxis, randomHistory } from './support/random-history.ts';
import { nodeEvent } from './support/node-event.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const node = nodeEvent;

describe('EventLog', () => {
  it('appends batches with consecutive seqs that survive a reopen', async () => {
    const file = tmp.file();
    const log = await EventLog.open({ file, now: steppingClock() });
    expect(log.appendEvents([node('a', 1), node('b', 2)])).toEqual([1, 2]);
    expect(log.appendEvents([node('c', 3)])).toEqual([3]);
    log.close();
    const again = await EventLog.open({ file });
    expect(again.lastSeq()).toBe(3);
    expect(again.events().map((e) => [e.seq, e.name])).toEqual([
      [1, 'a'],
      [2, 'b'],
      [3, 'c'],
    ]);
    expect(again.events({ fromSeq: 2, toSeq: 2 })[0]).toMatchObject({
      seq: 2,
      kind: 'Node',
      receivedAt: '2025-01-01T00:00:01.000Z',
    });
    again.close();
  });

  it('held WAL checkpoints: a bulk load stays in the WAL until the release copies it into the file once', async () => {
    const file = tmp.file();
    const log = await EventLog.open({ file });
    const pad = 'x'.repeat(4000);
    const batch = (from: number) =>
      Array.from({ length: 100 }, (_, i) => {
        const e = node(`n${from + i}`, from + i);
        return { ...e, object: { ...(e.object as object), pad } };
      });
    const release = log.holdWalCheckpoints();
    // 2 000 rows of ~4 KB: ~2 400 WAL pages, past the 1 000 at which SQLite copies by default.
    for (let i = 0; i < 20; i++) log.appendEvents(batch(i * 100 + 1));
    const size = (f: string) => fs.statSync(f).size;
    expect(size(`${file}-wal`)).toBeGreaterThan(8_000_000);
    expect(size(file)).toBeLessThan(1_000_000); // nothing copied yet
    release();
    expect(size(file)).toBeGreaterThan(8_000_000); // copied by the release's checkpoint
    release(); // idempotent
    log.appendEvents(batch(2001));
    log.close();
    const again = await openLog(file);
    expect(again.lastSeq()).toBe(2100);
    expect(verifyLog(again).ok).toBe(true);
    again.close();
  });

  it('rejects a bad event and writes nothing of its batch', async () => {
    const log = await openLog(tmp.file());
    log.appendEvents([node('a', 1)]);
    expect(() => log.appendEvents([node('b', 2), { ...node('c', 3), kind: 'Pod' as never }])).toThrow(
      /event 1 has unknown kind "Pod"; batch not written/,
    );
    expect(log.lastSeq()).toBe(1);
    expect(verifyLog(log).ok).toBe(true);
    log.close();
  });

  it('versions: numbered from 1, parent and seq range; refuses a version past the log or a pin with another hash', async () => {
    const log = await openLog(tmp.file());
    log.appendEvents([node('a', 1), node('b', 2)]);
    const h = 'c'.repeat(64);
    const v1 = log.recordVersion({ hash: h, reason: '2 events', seqTo: 2 });
    expect(v1).toMatchObject({ version: 1, parent: 0, seqFrom: 1, seqTo: 2, contentOf: undefined });
    expect(() => log.recordVersion({ hash: h, reason: 'x', seqTo: 5 })).toThrow(/only up to 2/);
    expect(() => log.recordVersion({ hash: 'd'.repeat(64), reason: 'pin', seqTo: 2, contentOf: 1 })).toThrow(
      /differs from version 1/,
    );
    expect(() => log.recordVersion({ hash: 'nothex', reason: 'x', seqTo: 2 })).toThrow(EventLogError);
    const v2 = log.recordVersion({
      hash: h,
      reason: 'pin to 1',
      seqTo: 2,
      contentOf: 1,
      delta: { upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: ['b'] },
    });
    expect(v2).toMatchObject({ version: 2, parent: 1, contentOf: 1 });
    expect(log.latestVersion()!.version).toBe(2);
    expect(log.versionDelta(2)!.removeNodes).toEqual(['b']);
    expect(log.versions({ from: 2 }).map((v) => v.version)).toEqual([2]);
    // paged reads: the newest N of a range, oldest first, and the range's count
    for (let i = 3; i <= 6; i++) log.recordVersion({ hash: h, reason: `v${i}`, seqTo: 2, contentOf: 1 });
    expect(log.versions({ newest: 2 }).map((v) => v.version)).toEqual([5, 6]);
    expect(log.versions({ to: 4, newest: 2 }).map((v) => v.version)).toEqual([3, 4]);
    expect(log.versions({ from: 5, newest: 9 }).map((v) => v.version)).toEqual([5, 6]);
    expect(log.versions({ newest: 1 })[0]).toEqual(log.versions({ from: 6 })[0]);
    expect([log.countVersions(), log.countVersions({ from: 2, to: 4 })]).toEqual([6, 3]);
    for (const reason of ['a', 'b', 'c']) log.recordOperation({ kind: 'unpin', actor: 't', reason, params: {} });
    expect(log.operations({ newest: 2 }).map((o) => o.reason)).toEqual(['b', 'c']);
    expect(log.operations().map((o) => o.reason)).toEqual(['a', 'b', 'c']);
    log.close();
  });

  it('resume store keeps one resourceVersion per kind across reopen', async () => {
    const file = tmp.file();
    const log = await openLog(file);
    const rs = log.resumeStore();
    expect(rs.load('Service')).toBeUndefined();
    rs.save('Service', '10');
    rs.save('Service', '12');
    rs.save('Node', '3');
    expect(rs.load('Service')).toBe('12');
    // Saves ride on the next append's transaction: visible to another connection only after it.
    const other = new Database(file, { readonly: true });
    const peek = () =>
      (
        other.prepare(`SELECT resource_version AS rv FROM resume_points WHERE kind = 'Service'`).get() as
          | { rv: string }
          | undefined
      )?.rv;
    expect(peek()).toBeUndefined();
    log.appendEvents([node('a', 1)]);
    expect(peek()).toBe('12');
    rs.save('Service', '13');
    log.close(); // drops the pending save: no append covered it (resume-points.test.ts says why)
    expect(peek()).toBe('12');
    other.close();
    const again = await openLog(file);
    expect(again.resumeStore().load('Service')).toBe('12');
    expect(again.resumeStore().load('Node')).toBe('3');
    again.close();
  });

  it('the async appender batches concurrent callers into few transactions, in call order', async () => {
    const log = await openLog(tmp.file());
    const app = new EventAppender(log, { maxBatch: 64 });
    const seqs = await Promise.all(Array.from({ length: 200 }, (_, i) => app.append(node(`n${i}`, i + 1))));
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(log.events().map((e) => e.name)).toEqual(Array.from({ length: 200 }, (_, i) => `n${i}`));
    // A failing batch rejects its callers only.
    const bad = app.append({ ...node('x', 1), type: 'BOGUS' as never });
    await expect(bad).rejects.toThrow(/unknown type/);
    await expect(app.append(node('y', 2))).resolves.toBe(201);
    log.close();
  });

  it("compaction keeps every retained version (pins of older versions included) replayable and the chain verifiable; acks are cut below version N, keeping each cluster node's last ACK and report (review4 G3)", async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const recorded = driveDataAxis(log, randomHistory({ seed: 11, steps: 200, pinRate: 0.08 }), {
      checkpointEvery: 30,
    });
    const before = recorded[Math.floor(recorded.length / 2)]!.version;
    const latest = recorded.at(-1)!.version;
    const cluster = replayVersion(log, latest).state.data;
    const [a, b] = ['node-0', 'node-1', 'node-2', 'node-3'].filter((n) => cluster.node(n) !== undefined);
    expect(b).toBeDefined();
    // a ACKs every version; `gone` (not a node of the cluster) only old ones; b's last ACK is old
    // and a NACK follows it: b holds the acks cut at its last ACK.
    let bLastAck = 0;
    for (const v of recorded.map((x) => x.version)) {
      log.recordAck(ack(a!, v));
      if (v < before - 4) log.recordAck(ack('gone', v));
      if (v === before - 3) bLastAck = log.recordAck(ack(b!, v));
      if (v === before - 1) log.recordAck({ ...nack(b!, v), lastGoodVersion: before - 3 });
    }
    const lagBefore = nodesBehind(log, { all: true });
    expect(lagBefore.map((n) => n.node)).toEqual([a, b, 'gone'].sort());
    const eventsBefore = log.events().length;
    const r = compactLog(log, before);
    expect(r.eventsRemoved).toBeGreaterThan(0);
    expect(log.events().length).toBe(eventsBefore - r.eventsRemoved);
    expect(r).toMatchObject({
      acksCutId: bLastAck - 1,
      acksRemoved: bLastAck - 1,
      acksHeldBy: { node: b, id: bLastAck },
    });
    expect(verifyLog(log, { deep: true }).problems).toEqual([]);
    // The nodes of the cluster stand where they stood (last report, last ACK); the departed one is gone.
    expect(nodesBehind(log, { all: true })).toEqual(lagBefore.filter((n) => n.node !== 'gone'));
    expect(nodesBehind(log, { all: true }).find((n) => n.node === b)).toMatchObject({
      status: 'FAILED',
      ackedVersion: before - 3,
    });
    for (const v of recorded.filter((x) => x.version >= before))
      expect(replayVersion(log, v.version).hash).toBe(v.hash);
    // an older version: its row removed too (probe9 V1), or kept (below a kept ACK's version) without its events
    const old = recorded.find((x) => {
      const row = log.version(x.version);
      return (
        x.version < before && (!row || (row.seqTo < r.cutSeq && !log.checkpoints().some((c) => c.seq === row.seqTo)))
      );
    });
    expect(old).toBeDefined();
    expect(() => replayVersion(log, old!.version)).toThrow(/compacted/);
    // Appending after compaction continues the chains from their heads.
    log.appendEvents([node('late', 1)]);
    // Once b reports the latest version, the acks cut moves up to the first report of version `before`.
    log.recordAck(ack(b!, latest));
    const r2 = compactLog(log, before);
    expect(r2.acksHeldBy).toBeUndefined();
    expect(r2.acksCutId).toBeGreaterThan(bLastAck);
    expect(nodeAt(log, a!).ack?.version).toBe(latest);
    // What is left is every report of version `before` or later (a's, then b's latest), no older one.
    const left = databaseOf(log).prepare('SELECT node, version FROM acks ORDER BY id').all() as {
      node: string;
      version: number;
    }[];
    const newer = recorded.filter((x) => x.version >= before).map((x) => ({ node: a!, version: x.version }));
    expect(left).toEqual([...newer, { node: b!, version: latest }]);
    log.recordAck(ack(a!, latest));
    expect(verifyLog(log).ok).toBe(true);
    log.close();
  });

  it('nodesBehind: a node not current that the newest version does not name LEFT the cluster, listed only with all (probe20 P20-3)', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const recorded = driveDataAxis(log, [{ batch: [node('member', 1)] }, { batch: [node('joined', 2)] }]);
    const first = recorded[0]!.version;
    const cluster = nodesOfNewestVersion(log)!;
    expect(cluster).toEqual({ version: recorded.at(-1)!.version, nodes: new Set(['joined', 'member']) });
    const member = 'member';
    log.recordAck(ack(member, first));
    log.recordAck(ack('scaled-away', first));
    log.recordAck(nack('replaced', first));
    // before: every node that ever reported and left stayed BEHIND (or FAILED) for ever
    expect(nodesBehind(log).map((n) => [n.node, n.status])).toEqual([
      [member, 'BEHIND'],
      ['replaced', 'FAILED'],
      ['scaled-away', 'BEHIND'],
    ]);
    expect(nodesBehind(log, { cluster: cluster.nodes }).map((n) => [n.node, n.status])).toEqual([[member, 'BEHIND']]);
    expect(nodesBehind(log, { all: true, cluster: cluster.nodes }).map((n) => [n.node, n.status])).toEqual([
      [member, 'BEHIND'],
      ['replaced', 'LEFT'],
      ['scaled-away', 'LEFT'],
    ]);
    log.close();
  });

  it('nodesBehind reads each node by index probes, never a pass over the acks table (review4 G3)', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    for (let v = 1; v <= 20; v++) for (const n of ['n1', 'n2', 'n3']) log.recordAck(v % 5 ? ack(n, v) : nack(n, v));
    const db = databaseOf(log);
    const prepare = db.prepare.bind(db);
    const statements: string[] = [];
    const spy = vi.spyOn(db, 'prepare').mockImplementation((sql: string) => {
      statements.push(sql);
      return prepare(sql);
    });
    const lag = nodesBehind(log, { all: true });
    spy.mockRestore();
    expect(lag.map((n) => [n.node, n.status, n.version, n.ackedVersion])).toEqual([
      ['n1', 'FAILED', 20, 19],
      ['n2', 'FAILED', 20, 19],
      ['n3', 'FAILED', 20, 19],
    ]);
    // Every step that touches acks is a SEARCH answered from an index alone or by rowid: a SCAN
    // (the old GROUP BY node) or a non-covering index search (the old max(version), one table
    // row per ACK) reads rows in proportion to the table.
    const steps = statements
      .filter((q) => /\backs\b/.test(q))
      .flatMap(
        (q) => db.prepare(`EXPLAIN QUERY PLAN ${q}`).all(...Array(count(q, '?')).fill(1)) as { detail: string }[],
      )
      .map((p) => p.detail)
      .filter((d) => /\backs\b/.test(d));
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.filter((d) => !/^SEARCH acks USING (COVERING INDEX|INTEGER PRIMARY KEY)/.test(d))).toEqual([]);
    log.close();
  });

  it('serves any version for republishing: the stored delta, or a rebuilt full form with the same hash', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const recorded = driveDataAxis(log, randomHistory({ seed: 12, steps: 60 }));
    const v = recorded[5]!;
    const a = versionArtifact(log, v.version);
    expect(a).toMatchObject({ version: v.version, hash: v.hash, form: 'delta' });
    // A version recorded without a delta comes back in checkpoint form, rebuilt from the log.
    const bare = log.recordVersion({
      hash: v.hash,
      reason: 'rollback to ' + v.version,
      seqTo: log.lastSeq(),
      contentOf: v.version,
    });
    const full = versionArtifact(log, bare.version);
    expect(full.form).toBe('checkpoint');
    if (full.form !== 'checkpoint') throw new Error('unreachable');
    expect(ClusterDataIndex.from(full.data).hash()).toBe(v.hash);
    log.close();
  });

  it('replayAt picks the version current at a time', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const recorded = driveDataAxis(log, randomHistory({ seed: 13, steps: 40 }));
    const v = log.version(recorded[3]!.version)!;
    expect(replayAt(log, v.createdAt).version.version).toBe(v.version);
    const justBefore = new Date(Date.parse(log.version(v.version + 1)!.createdAt) - 1).toISOString();
    expect(replayAt(log, justBefore).hash).toBe(v.hash);
    expect(() => replayAt(log, '2000-01-01T00:00:00Z')).toThrow(/no version existed/);
    expect(() => replayAt(log, 'yesterday')).toThrow(/not an ISO-8601 time/);
    log.close();
  });
});

function ack(node: string, version: number): Ack {
  return {
    type: 'ACK',
    node,
    version,
    configRevision: 1,
    dataHash: 'd',
    nodeStateHash: 'n',
    mode: 'ipvs',
    kernelWrites: 0,
    timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
    at: '2025-01-01T00:00:00.000Z',
  };
}

function nack(node: string, version: number): Nack {
  return {
    type: 'NACK',
    node,
    version,
    configRevision: 1,
    error: 'failed',
    lastGoodVersion: 0,
    lastGoodConfigRevision: 0,
    at: '2025-01-01T00:00:00.000Z',
  };
}

function count(s: string, c: string): number {
  return s.split(c).length - 1;
}
