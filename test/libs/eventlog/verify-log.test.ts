import Database from 'better-sqlite3';
import { closeSync, openSync, writeSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { STORAGE, verifyLog } from '../../../libs/eventlog/index.ts';
import { driveDataAxis, randomHistory } from './support/random-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts'; // reaching inside on purpose

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** A small log with events, versions, pins, ops, acks and a config revision; closed. */
async function makeLog(): Promise<string> {
  const file = tmp.file();
  const log = await openLog(file, steppingClock());
  driveDataAxis(log, randomHistory({ seed: 5, steps: 60, pinRate: 0.1 }), { checkpointEvery: 20 });
  log.recordConfigRevision({ config: { mode: 'ipvs' } as never, reason: 'initial' });
  log.recordAck({
    type: 'NACK',
    node: 'node-1',
    version: 1,
    configRevision: 1,
    error: 'boom',
    lastGoodVersion: 0,
    lastGoodConfigRevision: 0,
    at: '2025-01-01T00:10:00.000Z',
  });
  log.close();
  return file;
}

async function verify(file: string, deep = false) {
  const log = await openLog(file);
  try {
    return verifyLog(log, { deep });
  } finally {
    log.close();
  }
}

function tamper(file: string, sql: string): void {
  const db = new Database(file);
  db.exec(sql);
  db.close();
}

describe('verifyLog', () => {
  it('passes an untouched log, deep included', async () => {
    const file = await makeLog();
    const r = await verify(file, true);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.rowsChecked.events).toBeGreaterThan(50);
    expect(r.rowsChecked.versions).toBeGreaterThan(5);
  });

  const cases: [string, string, { table: string; row: number; problem: RegExp }][] = [
    [
      'an edited event',
      `UPDATE events SET object = replace(object, '10.244', '10.245') WHERE seq = (SELECT min(seq) FROM events WHERE kind = 'EndpointSlice' AND object LIKE '%10.244%')`,
      { table: 'events', row: -1, problem: /edited/ },
    ],
    [
      'a deleted event in the middle',
      'DELETE FROM events WHERE seq = 17',
      { table: 'events', row: 17, problem: /deleted/ },
    ],
    [
      'deleted events at the end',
      'DELETE FROM events WHERE seq > 30',
      { table: 'events', row: 31, problem: /deleted at the end/ },
    ],
    [
      'an inserted event past the head',
      `INSERT INTO events SELECT seq + 1000, received_at, kind, type, origin, namespace, name, uid, resource_version, service, object, row_hash FROM events WHERE seq = 3`,
      { table: 'events', row: -2, problem: /inserted/ },
    ],
    [
      'an edited version hash',
      `UPDATE versions SET hash = '${'a'.repeat(64)}' WHERE version = 2`,
      { table: 'versions', row: 2, problem: /edited/ },
    ],
    [
      'an edited operation actor',
      `UPDATE operations SET actor = 'mallory' WHERE id = 1`,
      { table: 'operations', row: 1, problem: /edited/ },
    ],
    ['a deleted ack', `DELETE FROM acks`, { table: 'acks', row: 1, problem: /deleted/ }],
    [
      'an edited checkpoint',
      `UPDATE checkpoints SET objects = replace(objects, 'svc-', 'svx-') WHERE seq = (SELECT min(seq) FROM checkpoints)`,
      { table: 'checkpoints', row: -3, problem: /edited/ },
    ],
  ];
  for (const [what, sql, want] of cases) {
    it(`names the first bad row after ${what}`, async () => {
      const file = await makeLog();
      const before = new Database(file);
      const ids = {
        '-1': (
          before
            .prepare(`SELECT min(seq) AS s FROM events WHERE kind = 'EndpointSlice' AND object LIKE '%10.244%'`)
            .get() as { s: number }
        ).s,
        '-2': 1003, // seq 3 copied to seq 1003
        '-3': (before.prepare('SELECT min(seq) AS s FROM checkpoints').get() as { s: number }).s,
      } as Record<string, number>;
      before.close();
      tamper(file, sql);
      const r = await verify(file);
      expect(r.ok).toBe(false);
      const p = r.problems[0]!;
      expect(p.table).toBe(want.table);
      expect(p.row).toBe(want.row < 0 ? ids[String(want.row)] : want.row);
      expect(p.problem).toMatch(want.problem);
    });
  }

  it('deep verify catches a version whose recorded hash was rewritten with a recomputed chain', async () => {
    const file = await makeLog();
    // An attacker who also recomputes the chain defeats the chain, not replay.
    const log = await openLog(file);
    const { chainHash } = await import('../../../libs/eventlog/index.ts');
    const { CHAINS } = await import('../../../libs/eventlog/row-chain.ts');
    const rows = databaseOf(log).prepare('SELECT * FROM versions ORDER BY version').all() as Record<
      string,
      string | number | null
    >[];
    let prev = '0'.repeat(64);
    const cols = CHAINS.versions.columns; // reading_revision (migration 0008) included: set on every new row
    for (const r of rows) {
      if (r.version === 3) r.hash = 'b'.repeat(64);
      const h = chainHash(prev, cols.map((c) => r[c]!) as never);
      databaseOf(log).prepare('UPDATE versions SET hash = ?, row_hash = ? WHERE version = ?').run(r.hash, h, r.version);
      prev = h;
    }
    databaseOf(log).prepare(`UPDATE chain_heads SET head_hash = ? WHERE chain = 'versions'`).run(prev);
    log.close();
    expect((await verify(file)).ok).toBe(true);
    const deep = await verify(file, true);
    expect(deep.problems[0]).toMatchObject({ table: 'replay', row: 3 });
  });
  it('reports a damaged page of an index, which no chain reads: SQLite quick_check, integrity_check when deep', async () => {
    const file = await makeLog();
    const db = new Database(file, { readonly: true });
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const { rootpage } = db
      .prepare(`SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'acks' ORDER BY name LIMIT 1`)
      .get() as { rootpage: number };
    db.close();
    expect((await verify(file)).ok).toBe(true);
    // a bad sector over the index's root page: its header and cells become garbage
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (rootpage - 1) * pageSize);
    closeSync(fd);
    for (const deep of [false, true]) {
      const r = await verify(file, deep);
      expect(r.ok).toBe(false);
      expect(r.problems).toHaveLength(1);
      expect(r.problems[0]).toMatchObject({ table: STORAGE, row: 0 });
      expect(r.problems[0]!.problem).not.toContain('\n'); // the CLI's one line
      expect(r.problems[0]!.problem).toMatch(
        new RegExp(
          `^SQLite's ${deep ? 'integrity_check' : 'quick_check'}: .+: the file is damaged; restore it from a backup`,
        ),
      );
    }
  });
});
