import { describe, expect, it } from 'vitest';
import type { Ack, AckOrNack, Nack } from '../../../libs/model/index.ts';
import { ReportLogGate } from '../../../services/planner/report-log-gate.ts';

// Which reports reach the log (review3 N2): the pure gate, driven by a given clock.

const nack = (node: string, version: number, error: string, at = 0): Nack => ({
  type: 'NACK',
  node,
  version,
  configRevision: 1,
  error,
  lastGoodVersion: 0,
  lastGoodConfigRevision: 0,
  at: new Date(at).toISOString(),
});
const ack = (node: string, version: number, at = 0): Ack => ({
  type: 'ACK',
  node,
  version,
  configRevision: 1,
  dataHash: 'd',
  nodeStateHash: 'h',
  mode: 'ipvs',
  kernelWrites: version,
  timings: { fetchMs: version, renderMs: 0, applyMs: 0 },
  at: new Date(at).toISOString(),
});

describe('ReportLogGate', () => {
  it('records each change of a node word; an unchanged report (other time, timings) once per repeat interval', () => {
    const g = new ReportLogGate({ repeatMs: 60_000 });
    expect(g.offer(nack('n', 2, 'boom', 0), 0)).toBe('record');
    expect(g.offer(nack('n', 2, 'boom', 2000), 2000)).toBe('repeat');
    expect(g.offer(nack('n', 2, 'boom', 4000), 59_999)).toBe('repeat');
    expect(g.offer(nack('n', 2, 'boom', 60_000), 60_000)).toBe('record');
    expect(g.offer(nack('n', 2, 'other', 0), 60_001)).toBe('record');
    expect(g.offer({ ...ack('n', 2), timings: { fetchMs: 1, renderMs: 2, applyMs: 3 } }, 60_002)).toBe('record');
    expect(g.offer({ ...ack('n', 2, 5), timings: { fetchMs: 9, renderMs: 9, applyMs: 9 } }, 60_003)).toBe('repeat');
    // a changed health word is a change
    expect(g.offer({ ...ack('n', 2), healthy: false, detail: 'resync failed' }, 60_004)).toBe('record');
    // another node has its own last word
    expect(g.offer(nack('m', 2, 'boom'), 60_005)).toBe('record');
    expect(g.notRecorded).toBe(3);
  });

  it('over its budget a node has its newest report held, written when the budget allows: the log ends on its last word', () => {
    const g = new ReportLogGate({ burst: 3, perSecond: 2 });
    const said: AckOrNack[] = [];
    for (let v = 1; v <= 3; v++) expect(g.offer(ack('n', v), 0)).toBe('record');
    expect(g.offer(ack('n', 4), 0)).toBe('held');
    expect(g.offer(ack('n', 5), 0)).toBe('held'); // replaces 4
    expect(g.offer(ack('quiet', 1), 0)).toBe('record'); // other nodes keep their own budget
    expect(g.nextDueAt(0)).toBe(500);
    expect(g.takeDue(499)).toEqual([]);
    said.push(...g.takeDue(500));
    expect(said.map((a) => a.version)).toEqual([5]);
    expect(g.nextDueAt(500)).toBeUndefined();
    // the held one was recorded, so its repeat is one
    expect(g.offer(ack('n', 5), 600)).toBe('repeat');
    // a held report overtaken by a repeat of the last recorded word is dropped: the log already ends there
    expect(g.offer(ack('n', 6), 600)).toBe('held');
    expect(g.offer(ack('n', 5), 700)).toBe('repeat');
    expect(g.nextDueAt(700)).toBeUndefined();
    expect(g.notRecorded).toBe(4); // 4 replaced, the repeat at 600, 6 dropped, the repeat at 700
  });

  it('takeAll (the planner stops): every held report, due or not, each once', () => {
    const g = new ReportLogGate({ burst: 1, perSecond: 1 });
    expect(g.offer(ack('n', 1), 0)).toBe('record');
    expect(g.offer(ack('n', 2), 0)).toBe('held');
    expect(g.offer(ack('n', 3), 0)).toBe('held'); // replaces 2
    expect(g.offer(ack('m', 1), 0)).toBe('record');
    expect(g.offer(ack('m', 2), 0)).toBe('held');
    expect(g.takeDue(10)).toEqual([]); // not due for about a second
    expect(g.takeAll(10).map((a) => `${a.node} ${a.version}`)).toEqual(['n 3', 'm 2']);
    expect(g.takeAll(10)).toEqual([]);
    expect(g.nextDueAt(10)).toBeUndefined();
    expect(g.offer(ack('n', 3), 20)).toBe('repeat'); // written by takeAll: the log's last word
  });

  it('a flood of distinct reports costs at most burst + perSecond rows per second', () => {
    const g = new ReportLogGate({ burst: 10, perSecond: 2 });
    let rows = 0;
    for (let i = 0; i < 2000; i++) {
      const now = i * 5; // 2000 reports in 10 s
      if (g.offer(nack('n', 1, `error ${i}`), now) === 'record') rows++;
      rows += g.takeDue(now).length;
    }
    expect(rows).toBeLessThanOrEqual(10 + 2 * 10);
    expect(rows).toBeGreaterThanOrEqual(10 + 2 * 10 - 1);
  });
  it('a clock that goes back (a wall-clock step) restarts the refill there: a held report is due within its usual wait (review4 G6)', () => {
    const g = new ReportLogGate({ burst: 10, perSecond: 2, repeatMs: 60_000 });
    const T = 1_800_000_000_000;
    for (let i = 0; i < 10; i++) expect(g.offer(ack('n', i + 1), T)).toBe('record');
    expect(g.offer(ack('n', 11), T)).toBe('held');
    const back = T - 3_600_000; // the clock steps back an hour
    expect(g.nextDueAt(back)).toBe(back + 500); // refills from `back` on: due in 500 ms, as without the step
    expect(g.takeDue(back + 60_000).map((a) => a.version)).toEqual([11]); // before: none until T
    // the repeat interval counts from the step too, not for an hour and a minute
    expect(g.offer(ack('n', 11), back + 60_000 + 59_999)).toBe('repeat');
    expect(g.offer(ack('n', 11), back + 60_000 + 60_000)).toBe('record');
  });
});
