import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { nodeEvent } from './support/node-event.ts';
import { tempDir } from './support/temp-log.ts';

// EventLog.exportRows takes the events rows it appended last from memory (RecentRows in
// libs/eventlog/log-rows.ts) instead of reading them back: the replicated log's flushes.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const node = nodeEvent;
const nodes = (from: number, n: number) => Array.from({ length: n }, (_, i) => node(`n${from + i}`, from + i));

describe('exports of rows the log just appended', () => {
  it('take them from memory, not from the file', async () => {
    const file = tmp.file();
    const log = await EventLog.open({ file, sync: 'normal' });
    const from = log.position();
    log.appendEvents(nodes(1, 3));
    // Altered behind the log's back (no chain link changed): an export reading the file sees it.
    const raw = new Database(file);
    raw.prepare("UPDATE events SET object = '{}' WHERE seq = 2").run();
    raw.close();
    const fromMemory = log.exportRows(from).rows.events;
    const fresh = await EventLog.open({ file, migrate: false });
    const fromFile = fresh.exportRows(from).rows.events;
    expect(fromFile[1]?.[10]).toBe('{}');
    expect(fromMemory[1]?.[10]).toBe(JSON.stringify(node('n2', 2).object));
    expect(fromMemory.map((r) => r[0])).toEqual([1, 2, 3]);
    fresh.close();
    log.close();
  });

  it('equal what the file holds after any mix of appends, rolled-back transactions, versions and exports', async () => {
    // A second EventLog on the same file has appended nothing: its exports read the file.
    const file = tmp.file();
    const log = await EventLog.open({ file, sync: 'normal' });
    const reader = await EventLog.open({ file, migrate: false, sync: 'normal' });
    const steps = ['append', 'export', 'rollback', 'export', 'append', 'append', 'rollback', 'append', 'export'];
    steps.push('version', 'export', 'rollback', 'rollback', 'append', 'export', 'export');
    let next = 1;
    let since = log.position();
    let exports = 0;
    for (const step of steps) {
      if (step === 'append') log.appendEvents(nodes(next, 3));
      else if (step === 'rollback')
        expect(() =>
          log.atomically(() => {
            log.appendEvents(nodes(next, 2));
            throw new Error('undone');
          }),
        ).toThrow('undone');
      else if (step === 'version') log.recordVersion({ hash: 'a'.repeat(64), reason: 't', seqTo: log.lastSeq() });
      else {
        const mine = log.exportRows(since);
        expect(mine).toEqual(reader.exportRows(since));
        exports += mine.rows.events.length;
        since = mine.to;
      }
      next += 10;
    }
    expect(exports).toBe(15);
    // an export from before what is held in memory reads the file
    expect(log.exportRows(reader.exportRows(since, { whole: true }).from)).toEqual(
      reader.exportRows(reader.exportRows(since, { whole: true }).from),
    );
    reader.close();
    log.close();
  });
});
