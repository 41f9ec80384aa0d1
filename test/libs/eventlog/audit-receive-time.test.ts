import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { migrationProvider } from '../../../migrations/index.ts';
import { chainHash, EventLog, GENESIS_HASH, nodeAt, replayVersion, verifyLog } from '../../../libs/eventlog/index.ts';
import {
  canonicalJson,
  DEFAULT_PROXY_CONFIG,
  type Ack,
  type ReadingRevision,
  type WatchEvent,
} from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { main } from '../../../services/cli/main.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// Review 2, R3: `audit node [--at]` placed ACKs in time on the node's own clock (the row's `at`).
// Rows now carry the planner's receive time (migration 0005), which --at and "the last ACK" use.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const T0 = '2026-01-01T10:00:00.000Z';
const plus = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();

const web = (clusterIP: string, rv: number): WatchEvent => ({
  kind: 'Service',
  type: rv === 1 ? 'ADDED' : 'MODIFIED',
  origin: 'watch',
  namespace: 'default',
  name: 'web',
  uid: 'u-web',
  resourceVersion: String(rv),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default', uid: 'u-web', resourceVersion: String(rv) },
    spec: { clusterIP, ports: [{ port: 80, protocol: 'TCP' }] },
  },
});

function ackOf(log: EventLog, version: number, at: string): Ack {
  const v = replayVersion(log, version);
  return {
    type: 'ACK',
    node: 'n1',
    version,
    configRevision: 1,
    dataHash: v.hash,
    nodeStateHash: nodeStateHash(renderNodeState(v.state.data, 'n1', DEFAULT_PROXY_CONFIG)),
    mode: 'ipvs',
    kernelWrites: 1,
    timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
    at,
  };
}

/** A log at planner time T0 with v1 (web .10) and v2 (web .99), and a clock the test moves. */
async function twoVersions(
  name: string,
  readingRevision?: ReadingRevision,
): Promise<{ log: EventLog; file: string; set: (iso: string) => void }> {
  let t = Date.parse(T0);
  const file = tmp.file(name);
  const log = await openLog(file, () => new Date(t));
  log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' });
  const axis = DataAxis.restore(log, readingRevision ? { readingRevision } : {});
  axis.ingest([web('10.96.0.10', 1)]);
  axis.sync();
  axis.ingest([web('10.96.0.99', 2)]);
  axis.sync();
  return { log, file, set: (iso) => (t = Date.parse(iso)) };
}

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  try {
    return { code: await main(args), out };
  } finally {
    o.mockRestore();
  }
}

describe('audit node places ACKs on the planner clock', () => {
  it('--at: a node whose clock is 1 h ahead had acked v1 one minute after the planner received it', async () => {
    const { log, file } = await twoVersions('ahead.db');
    log.recordAck(ackOf(log, 1, plus(T0, 3_600_000))); // received at T0, stamped T0 + 1 h by the node
    const r = nodeAt(log, 'n1', plus(T0, 60_000));
    expect(r.ack?.version).toBe(1);
    expect(r.receivedAt).toBe(T0);
    expect(r.clockSkewMs).toBe(3_600_000);
    expect(nodeAt(log, 'n1', plus(T0, -1)).ack).toBeUndefined();
    log.close();
    const text = await cli('audit', '--db', file, 'node', 'n1', '--at', plus(T0, 60_000));
    expect(text.code).toBe(0);
    expect(text.out).toContain(
      `acked at ${plus(T0, 3_600_000)} (node clock), received ${T0}; NODE CLOCK 3600 s AHEAD OF the recording planner's (one of the two is wrong), node state hash`,
    );
    const json = JSON.parse((await cli('audit', '--db', file, 'node', 'n1', '--json')).out) as Record<string, unknown>;
    expect(json).toMatchObject({
      ack: { version: 1, at: plus(T0, 3_600_000) },
      receivedAt: T0,
      clockSkewMs: 3_600_000,
    });
  });

  it('no --at: the ACK received last is the last, whatever the node stamped on an earlier one', async () => {
    const { log, set } = await twoVersions('stale.db');
    log.recordAck(ackOf(log, 1, plus(T0, 86_400_000))); // the node's clock a day ahead, fixed later by NTP
    set(plus(T0, 5_000));
    log.recordAck(ackOf(log, 2, plus(T0, 5_000)));
    set(plus(T0, 9_000));
    log.recordAck({
      type: 'NACK',
      node: 'n1',
      version: 3,
      configRevision: 1,
      error: 'x',
      lastGoodVersion: 2,
      lastGoodConfigRevision: 1,
      at: plus(T0, -3_600_000),
    });
    const r = nodeAt(log, 'n1');
    expect(r.ack?.version).toBe(2);
    expect(r.clockSkewMs).toBe(0);
    expect(r.nacksSince).toBe(1); // received after the ACK, though the node stamped it an hour earlier
    expect(nodeAt(log, 'n1', plus(T0, 6_000)).nacksSince).toBe(0);
    expect(nodeAt(log, 'n1', plus(T0, 1_000)).ack?.version).toBe(1);
    // the planner's clock stepping back does not place a later row before an earlier one
    set(plus(T0, -60_000));
    log.recordAck(ackOf(log, 1, T0));
    expect(nodeAt(log, 'n1', plus(T0, 9_000)).ack?.version).toBe(1);
    expect(verifyLog(log).ok).toBe(true);
    log.close();
  });

  // probe12 L2: a planner an hour ahead recorded ACKs, then one with the right clock: an answer for a
  // time inside that step read as certain ("version 5" while the node ran 12); it now says it may be off.
  it('--at inside a clock step of the planners: the answer says it is uncertain, and by how much', async () => {
    const { log, set } = await twoVersions('step.db');
    log.recordAck(ackOf(log, 1, T0));
    set(plus(T0, 3_600_000)); // a planner an hour ahead records the next ACK
    log.recordAck(ackOf(log, 2, plus(T0, 60_000)));
    set(plus(T0, 120_000)); // one with the right clock records the one after
    log.recordAck(ackOf(log, 1, plus(T0, 120_000)));
    const inside = nodeAt(log, 'n1', plus(T0, 90_000));
    expect(inside.clockStep).toMatch(/step back by up to 3480 s .* this answer may be off by that much/);
    const { out } = await cli('audit', '--db', log.file, 'node', 'n1', '--at', plus(T0, 90_000));
    expect(out).toMatch(/^UNCERTAIN: the log's ACK stamps step back by up to 3480 s/m);
    expect(nodeAt(log, 'n1', plus(T0, -1_000)).clockStep).toBeUndefined(); // before the step: certain
    expect(nodeAt(log, 'n1').clockStep).toBeUndefined(); // no --at: the last received, certain
    log.close();
  });

  it('a log of an older release: old ACK rows verify, read on their `at`, ship as before; new rows carry received_at', async () => {
    // A log as a release before 0005 left it: v1 written (as it read, reading revision 1), the
    // schema taken back to 0004 (0005's and 0008's down, possible while no row carries received_at
    // or a reading revision), one ACK row written the way it wrote them.
    const { log: first, file } = await twoVersions('older.db', 1);
    const old: Ack = { ...ackOf(first, 1, T0), node: 'n0' };
    first.close();
    const db = new Database(file);
    const k = new Kysely<unknown>({ dialect: new SqliteDialect({ database: db }) });
    const down = await new Migrator({ db: k, provider: migrationProvider }).migrateTo('0004-checkpoint-pieces');
    expect(down.error).toBeUndefined();
    expect(db.prepare(`SELECT count(*) AS n FROM pragma_table_info('acks') WHERE name = 'received_at'`).get()).toEqual({
      n: 0,
    });
    const cells = [1, 'ACK', 'n0', 1, 1, T0, canonicalJson(old)];
    const hash = chainHash(GENESIS_HASH, cells);
    db.prepare(
      'INSERT INTO acks (id, type, node, version, config_revision, at, body, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(...cells, hash);
    db.prepare(`UPDATE chain_heads SET head_id = 1, head_hash = ? WHERE chain = 'acks'`).run(hash);
    db.close();

    const log = await openLog(file, () => new Date(plus(T0, 1_000))); // migrates to 0005
    expect(log.schema.pending).toEqual([]);
    // what the planner names in its one line "event log migrated: …" (probe3 U4)
    expect(log.migrated).toEqual([
      '0005-ack-received-at',
      '0006-replication-stream-created',
      '0007-compactions',
      '0008-reading-revision',
      '0009-compaction-finished-by',
      '0010-compaction-versions-removed',
    ]);
    expect(verifyLog(log)).toMatchObject({ ok: true, rowsChecked: { acks: 1 } });
    const r = nodeAt(log, 'n0', T0);
    expect(r.ack?.at).toBe(T0);
    expect(r.receivedAt).toBeUndefined();
    log.recordAck({ ...old, at: plus(T0, 2_000) });
    expect(verifyLog(log).ok).toBe(true);

    // Shipped: the old row in the form every release takes (7 columns + hash), the new one with received_at.
    const batch = log.exportRows(log.position(), { whole: true });
    expect(batch.rows.acks.map((row) => row.length)).toEqual([8, 9]);
    expect(batch.rows.acks[1]![7]).toBe(plus(T0, 1_000));
    const copyFile = tmp.file('copy.db');
    const copy = await openLog(copyFile);
    expect(copy.migrated).toEqual([]); // a fresh file is created, not migrated
    copy.importRows(batch);
    expect(verifyLog(copy).ok).toBe(true);
    expect(nodeAt(copy, 'n0')).toMatchObject({ receivedAt: plus(T0, 1_000), ack: { at: plus(T0, 2_000) } });
    copy.close();
    log.close();

    // received_at is covered by the chain: setting, moving or clearing it is named by db verify
    const edited = new Database(copyFile);
    edited.prepare(`UPDATE acks SET received_at = ? WHERE id = 2`).run(plus(T0, 5_000));
    edited.close();
    const bad = await cli('db', 'verify', '--db', copyFile);
    expect(bad.code).toBe(1);
  });
});
