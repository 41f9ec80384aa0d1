import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { parseTime } from '../../../services/cli/flag-values.ts';
import { table } from '../../../services/cli/output.ts';
import { sbIn } from './cli-support.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sb-audit-'));
const db = path.join(dir, 'log.db');
const longReason =
  'move every node to nftables because the ipvs scheduler misbehaves under the new traffic mix seen on monday';

beforeAll(async () => {
  const log = await EventLog.open({ file: db });
  const configState = {
    defaultRevision: 2,
    previousDefault: 1,
    rollout: { configRevision: 2, waves: [['node-01', 'node-02', 'node-03', 'node-04']], status: 'running' },
  };
  log.recordOperation({ kind: 'rollout', actor: 'ci/alice', reason: longReason, params: { revision: 2, configState } });
  log.recordOperation({ kind: 'pin', actor: 'bob', reason: 'hold', params: { axis: 'data', version: 1 } });
  const back = { defaultRevision: 1, previousDefault: undefined, earlierDefaults: [], rollout: undefined };
  log.recordOperation({
    kind: 'rollback',
    actor: 'carol',
    reason: 'undo',
    params: { axis: 'config', to: null, configState: back },
  });
  log.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('audit output', () => {
  it('ops: reason before the long columns, cut in the table, whole with -o wide, data with -o json|yaml', async () => {
    const t = await sbIn(['audit', '--db', db, 'ops']);
    expect(t.code).toBe(0);
    const [head, first, second, third] = t.stdout.split('\n');
    expect(head).toMatch(/^ID\s+AT\s+KIND\s+ACTOR\s+VERSION\s+REASON\s+OUTCOME\s+PARAMS$/);
    expect(first).toMatch(
      /^1\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z\s+rollout\s+ci\/alice\s+-\s+move every node to nftables because the ipvs scheduler \S*…\s+accepted\s+\{"configState":\{"defaultRevision":2,"\S*…$/,
    );
    expect(second).toMatch(/^2\s+.*\s+pin\s+bob\s+-\s+hold\s+accepted\s+\{"axis":"data","version":1\}$/);
    expect(first!.length).toBeLessThan(190);
    // probe11 K8: where a config rollback went, though PARAMS is cut
    expect(third).toMatch(/^3\s+.*\s+rollback\s+carol\s+→ rev 1\s+undo\s+accepted\s/);

    const wide = await sbIn(['audit', '--db', db, 'ops', '-o', 'wide']);
    expect(wide.stdout).toContain(longReason);
    expect(wide.stdout).toContain('"waves":[["node-01","node-02","node-03","node-04"]]');

    const json = JSON.parse((await sbIn(['audit', '--db', db, 'ops', '--json'])).stdout) as { actor: string }[];
    const yaml = parseYaml((await sbIn(['audit', '--db', db, 'ops', '-o', 'yaml'])).stdout) as typeof json;
    expect(json.map((o) => o.actor)).toEqual(['ci/alice', 'bob', 'carol']);
    expect(yaml).toEqual(json);
  });

  // probe12 L9: a planner an hour ahead recorded operations, then one with the right clock: the
  // table listed 13:58 then 11:59 with nothing to say the stamps had gone back.
  it('ops: an operation stamped well before an earlier one is marked, with a footnote', async () => {
    const file = path.join(dir, 'stepped.db');
    let t = Date.parse('2026-12-03T13:58:00Z');
    const log = await EventLog.open({ file, now: () => new Date(t) });
    log.recordOperation({ kind: 'pin', actor: 'alice', reason: 'ahead', params: { axis: 'data', version: 1 } });
    t = Date.parse('2026-12-03T11:59:00Z');
    log.recordOperation({ kind: 'unpin', actor: 'alice', reason: 'right', params: { axis: 'data' } });
    log.close();
    const r = await sbIn(['audit', '--db', file, 'ops']);
    const lines = r.stdout.split('\n');
    expect(lines[1]).toMatch(/^1\s+2026-12-03 13:58:00Z\s+pin/);
    expect(lines[2]).toMatch(/^2\s+2026-12-03 11:59:00Z\*\s+unpin/);
    expect(r.stdout).toMatch(/^\* stamped more than 60 s before an earlier operation: a planner's clock was wrong/m);
    // the data is what the log holds
    expect((JSON.parse((await sbIn(['audit', '--db', file, 'ops', '--json'])).stdout) as { at: string }[])[1]!.at).toBe(
      '2026-12-03T11:59:00.000Z',
    );
  });

  it('--at takes relative and local times; a bare clock time or nonsense is a usage error', async () => {
    const before = Date.now();
    const r = await sbIn(['audit', '--db', db, 'node', 'node-1', '--at', '10m', '-o', 'json']);
    expect(r.code).toBe(0);
    const at = Date.parse((JSON.parse(r.stdout) as { at: string }).at);
    expect(at).toBeGreaterThanOrEqual(before - 600_000 - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() - 600_000 + 1000);

    const local = await sbIn(['audit', '--db', db, 'node', 'node-1', '--at', '2026-11-30 14:02']);
    expect(local.stdout).toBe(
      // the log holds operations but no version and no report: what the node ran is unknown (probe8 C2)
      `node node-1 at ${new Date(2026, 10, 30, 14, 2).toISOString()}: unknown: the log holds no version and no node report yet\nNode object: no event of this name in the log up to ${new Date(2026, 10, 30, 14, 2).toISOString()}\n`,
    );
    for (const bad of ['19:46', 'yesterday', '2026-02-31 10:00', '10 m']) {
      const u = await sbIn(['audit', '--db', db, 'node', 'node-1', '--at', bad]);
      expect({ bad, code: u.code }).toEqual({ bad, code: 2 });
      expect(u.stderr).toMatch(
        new RegExp(
          `^error: option '--at <time>' argument '${bad}' is invalid\\. expected a time: 10m or 2h \\(ago\\).*\\n$`,
        ),
      );
    }
    expect((await sbIn(['replay', '--db', db, '--at', '19:46'])).code).toBe(2);
  });

  it('churn: namespaces busiest first with their busiest object, -o json; arguments are a usage error', async () => {
    const file = path.join(dir, 'churn.db');
    const log = await EventLog.open({ file });
    const svc = (ns: string, name: string, rv: number) => ({
      kind: 'Service' as const,
      type: 'MODIFIED' as const,
      origin: 'watch' as const,
      namespace: ns,
      name,
      uid: `u-${ns}-${name}`,
      resourceVersion: String(rv),
      object: { apiVersion: 'v1', kind: 'Service', metadata: { namespace: ns, name, resourceVersion: String(rv) } },
    });
    log.appendEvents([svc('tenant-a', 'noisy', 1), svc('tenant-a', 'noisy', 2), svc('tenant-a', 'other', 3)]);
    log.appendEvents([svc('tenant-b', 'calm', 4)]);
    log.close();
    const t = await sbIn(['audit', '--db', file, 'churn', '--since', '1h']);
    expect(t.code).toBe(0);
    const lines = t.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^4 events, 0\.\d kB of objects since \S+Z \(seq 1–4\)$/);
    expect(lines[1]).toMatch(/^NAMESPACE\s+EVENTS\s+BYTES\s+OBJECTS\s+BUSIEST OBJECT\s+ITS EVENTS$/);
    expect(lines[2]).toMatch(/^tenant-a\s+3\s+0\.\d kB\s+2\s+Service\/noisy\s+2$/);
    expect(lines[3]).toMatch(/^tenant-b\s+1\s+0\.\d kB\s+1\s+Service\/calm\s+1$/);
    const json = JSON.parse((await sbIn(['audit', '--db', file, 'churn', '-o', 'json'])).stdout) as {
      events: number;
      namespaces: { namespace: string; events: number }[];
    };
    expect(json.events).toBe(4);
    expect(json.namespaces.map((n) => [n.namespace, n.events])).toEqual([
      ['tenant-a', 3],
      ['tenant-b', 1],
    ]);
    const none = await sbIn(['audit', '--db', file, 'churn', '--since', '0s']); // since now
    expect(none.stdout).toMatch(/^no events received since \S+Z\n$/);
    // a time to come is a range backwards (review5 F6): before, "no events received since 2999-…"
    const future = await sbIn(['audit', '--db', file, 'churn', '--since', '2999-01-01T00:00Z']);
    expect(future).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'switchboard: --since 2999-01-01T00:00:00.000Z is in the future: churn counts the events received from then until now\n',
    });
    const usage = await sbIn(['audit', '--db', file, 'churn', 'tenant-a']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^switchboard: audit churn: expected 0 arguments \(.*\)\n$/);
  });

  it('parses times and cuts tables as documented', () => {
    const now = new Date('2026-11-30T12:00:00Z');
    expect(parseTime('2h', now)).toBe('2026-11-30T10:00:00.000Z');
    expect(parseTime('1h30m', now)).toBe('2026-11-30T10:30:00.000Z');
    expect(parseTime('2026-11-30T14:02:00+01:00', now)).toBe('2026-11-30T13:02:00.000Z');
    expect(parseTime('2026-11-30T14:02Z', now)).toBe('2026-11-30T14:02:00.000Z');
    expect(parseTime('14:02', now)).toBeUndefined();
    const t = table([{ header: 'A' }, { header: 'B', max: 5 }], [['x', 'abcdefgh']]);
    expect(t).toBe('A  B\nx  abcd…\n');
    expect(table([{ header: 'A' }, { header: 'B', max: 5 }], [['x', 'abcdefgh']], true)).toBe('A  B\nx  abcdefgh\n');
    expect(table([{ header: 'A' }, { header: 'B' }], [['x', 'abcdefgh']], false, 8)).toBe('A  B\nx  abcd…\n');
  });
});
