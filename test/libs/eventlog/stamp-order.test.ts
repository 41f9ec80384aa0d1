import { afterAll, expect, it } from 'vitest';
import { EventLog, nodeAt, placeInTime, verifyLog } from '../../../libs/eventlog/index.ts';
import type { Ack } from '../../../libs/model/index.ts';
import { tempDir } from './support/temp-log.ts';

// Review4 G6: a stamp from a clock far ahead (or behind) must not become the stamp of every later
// row, and audits must still place rows in time around such a step.

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const t = (hhmm: string) => Date.parse(`2026-12-02T${hhmm}:00Z`);
const YEAR_AHEAD = Date.parse('2027-12-02T10:00:00Z');
const EPOCH = Date.parse('1970-01-01T00:00:00Z');

it("placeInTime: a row ahead is placed at the later rows' time, a dip at the level before it, small steps as before", () => {
  // one row a year ahead, then the clock corrected (the reviewer's case)
  expect(placeInTime([t('10:00'), YEAR_AHEAD, t('10:05'), t('11:00')])).toEqual([
    t('10:00'),
    t('10:05'),
    t('10:05'),
    t('11:00'),
  ]);
  // a host that booted with its RTC at 1970, then NTP: the dip is placed with the rows before it
  expect(placeInTime([t('10:00'), t('10:05'), EPOCH, EPOCH + 1000, t('10:11')])).toEqual([
    t('10:00'),
    t('10:05'),
    t('10:05'),
    t('10:05'),
    t('10:11'),
  ]);
  // steps back within the bound (older logs, a planner 30 s behind): never before the row before (review2 L3)
  const s = t('10:00');
  expect(placeInTime([s, s + 40_000, s + 10_000, s + 50_000])).toEqual([s, s + 40_000, s + 40_000, s + 50_000]);
});

const ack = (node: string, version: number): Ack => ({
  type: 'ACK',
  node,
  version,
  configRevision: 1,
  dataHash: 'a'.repeat(64),
  nodeStateHash: 'a'.repeat(64),
  mode: 'ipvs',
  kernelWrites: 0,
  timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
  at: '2026-12-02T10:00:00.000Z',
});

it('one write by a clock a year ahead stamps only its own rows: versionAt and audit node --at answer around it, verify still passes', async () => {
  let clock = t('10:00');
  const said: string[] = [];
  const file = tmp.file();
  const log = await EventLog.open({
    file,
    now: () => new Date(clock),
    sync: 'normal',
    onClockStep: (m) => said.push(m),
  });
  const v = (h: string) => log.recordVersion({ hash: h.repeat(64), reason: 'r', seqTo: 0 });
  v('1');
  log.recordAck(ack('n1', 1));
  clock = YEAR_AHEAD; // a wrong RTC / NTP step forward, for one write
  v('2');
  log.recordAck(ack('n1', 2));
  clock = t('10:05'); // NTP steps the clock back
  v('3');
  log.recordAck(ack('n1', 3));
  clock = t('11:00');
  v('4');
  log.recordAck(ack('n1', 4));
  expect(log.versions({}).map((r) => r.createdAt.slice(0, 16))).toEqual([
    '2026-12-02T10:00',
    '2027-12-02T10:00',
    '2026-12-02T10:05',
    '2026-12-02T11:00', // before: 2027 for 3 and 4
  ]);
  expect(said).toHaveLength(2); // the version's and the ACK's, each one line
  expect(said[0]).toMatch(/^event log: clock step: version 3 is stamped 2026-12-02T10:05:00.000Z, 31535700 s before/);
  const at = '2026-12-02T10:30:00Z'; // version 3 was current then, and n1 ran it
  expect(log.versionAt(at)?.version).toBe(3); // before: 1
  expect(nodeAt(log, 'n1', at).ack?.version).toBe(3); // before: 1
  expect(log.versionAt('2026-12-02T10:01:00Z')?.version).toBe(1);
  expect(nodeAt(log, 'n1', '2026-12-02T10:01:00Z').ack?.version).toBe(1);
  expect(log.versionAt('2026-12-02T11:30:00Z')?.version).toBe(4);
  expect(verifyLog(log).ok).toBe(true);
  log.close();
});

it('a planner whose clock is behind the last row by more than the bound (a host booting before NTP) keeps its stamp; audits place it with the rows before', async () => {
  let clock = t('10:00');
  const file = tmp.file();
  const log = await EventLog.open({ file, now: () => new Date(clock), sync: 'normal', onClockStep: () => {} });
  const v = (h: string) => log.recordVersion({ hash: h.repeat(64), reason: 'r', seqTo: 0 });
  v('1');
  log.recordAck(ack('n1', 1));
  clock = t('10:05');
  v('2');
  log.recordAck(ack('n1', 2));
  clock = EPOCH; // failover to a host whose RTC says 1970
  v('3');
  log.recordAck(ack('n1', 3));
  clock = t('10:20'); // NTP synced
  v('4');
  log.recordAck(ack('n1', 4));
  expect(log.versionAt('2026-12-02T10:02:00Z')?.version).toBe(1);
  expect(nodeAt(log, 'n1', '2026-12-02T10:02:00Z').ack?.version).toBe(1);
  expect(log.versionAt('2026-12-02T10:10:00Z')?.version).toBe(3); // made after 10:05, before 10:20
  expect(nodeAt(log, 'n1', '2026-12-02T10:10:00Z').ack?.version).toBe(3);
  log.close();
});
