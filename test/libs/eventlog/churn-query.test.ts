// audit churn: which namespaces fill the log since a time, read without a scan of the whole table.
import { afterAll, describe, expect, it } from 'vitest';
import { eventChurn, type EventLog } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { openLog, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const service = (namespace: string, name: string, rv: number, pad = 0): WatchEvent => ({
  kind: 'Service',
  type: rv === 1 ? 'ADDED' : 'MODIFIED',
  origin: 'watch',
  namespace,
  name,
  uid: `u-${namespace}-${name}`,
  resourceVersion: String(rv),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace, name, resourceVersion: String(rv), annotations: { note: 'x'.repeat(pad) } },
    spec: { clusterIP: '10.96.0.1', ports: [{ port: 80, protocol: 'TCP' }] },
  },
});

/** What eventChurn must answer, by brute force over every logged event. */
function expected(log: EventLog, since: string) {
  const by = new Map<string, { events: number; bytes: number; objects: Map<string, number> }>();
  for (const e of log.events()) {
    if (e.receivedAt < since) continue;
    const n = by.get(e.namespace) ?? { events: 0, bytes: 0, objects: new Map() };
    n.events++;
    n.bytes += Buffer.byteLength(JSON.stringify(e.object));
    n.objects.set(`${e.kind}/${e.name}`, (n.objects.get(`${e.kind}/${e.name}`) ?? 0) + 1);
    by.set(e.namespace, n);
  }
  return [...by]
    .map(([namespace, n]) => ({ namespace, events: n.events, objects: n.objects.size, bytes: n.bytes }))
    .sort((a, b) => b.events - a.events || b.bytes - a.bytes || (a.namespace < b.namespace ? -1 : 1));
}

describe('eventChurn', () => {
  it('counts per namespace exactly what a scan of every event since the time counts, at every time asked', async () => {
    let t = Date.parse('2026-12-02T10:00:00Z');
    const log = await openLog(tmp.file(), () => new Date(t));
    // a seeded walk: a noisy tenant rewriting one Service, a quiet one, versions now and then
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const rv = new Map<string, number>();
    const times: string[] = [];
    for (let step = 0; step < 120; step++) {
      t += 1000 + Math.floor(rand() * 5000);
      times.push(new Date(t).toISOString());
      const [ns, name, pad] = rand() < 0.7 ? ['noisy', 'busy', 2000] : ['quiet', `s${Math.floor(rand() * 5)}`, 10];
      const k = `${ns}/${name}`;
      rv.set(k, (rv.get(k) ?? 0) + 1);
      const seq = log.appendEvents([service(ns, name, rv.get(k)!, pad)])[0]!;
      if (rand() < 0.3) log.recordVersion({ hash: 'a'.repeat(64), reason: 'events', seqTo: seq });
    }
    for (const since of [
      '2026-12-02T09:00:00.000Z',
      ...times.filter((_, i) => i % 7 === 0),
      '2026-12-03T00:00:00.000Z',
    ]) {
      const c = eventChurn(log, since);
      const want = expected(log, since);
      expect(
        c.namespaces.map(({ namespace, events, objects, bytes }) => ({ namespace, events, objects, bytes })),
      ).toEqual(want);
      expect(c.events).toBe(want.reduce((s, n) => s + n.events, 0));
    }
    const all = eventChurn(log, '2026-12-02T09:00:00.000Z');
    expect(all.namespaces[0]).toMatchObject({ namespace: 'noisy', busiest: 'Service/busy', objects: 1 });
    expect(all.namespaces[0]!.busiestEvents).toBe(all.namespaces[0]!.events);
    expect(all.fromSeq).toBe(1);
    expect(all.toSeq).toBe(120);
    expect(eventChurn(log, '2026-12-03T00:00:00.000Z')).toMatchObject({
      events: 0,
      fromSeq: 0,
      toSeq: 0,
      namespaces: [],
    });
    log.close();
  });
});
