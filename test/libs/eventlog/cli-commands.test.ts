import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../services/cli/main.ts';
import { driveDataAxis, randomHistory, type DrivenVersion } from './support/random-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { EventLog, replayableFrom, replayVersion } from '../../../libs/eventlog/index.ts';

const BIN = path.join(import.meta.dirname, '../../../bin/switchboard');
const tmp = tempDir();
let file: string;
let recorded: DrivenVersion[];

/** Runs the CLI in a child process, exactly as a user would (used sparingly: tsx startup is slow). */
function spawnSb(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Runs the CLI's main() in this process, capturing stdout/stderr. */
async function sb(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s);
    return true;
  });
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

beforeAll(async () => {
  file = tmp.file('cli.db');
  const log = await openLog(file, steppingClock());
  recorded = driveDataAxis(log, randomHistory({ seed: 7, steps: 80, pinRate: 0.1 }), { checkpointEvery: 25 });
  const cfg = log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' });
  const v2 = replayVersion(log, 2);
  log.recordAck({
    type: 'ACK',
    node: 'node-1',
    version: 2,
    configRevision: cfg.revision,
    dataHash: v2.hash,
    nodeStateHash: nodeStateHash(renderNodeState(v2.state.data, 'node-1', DEFAULT_PROXY_CONFIG)),
    mode: 'ipvs',
    kernelWrites: 3,
    timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
    at: '2025-01-01T00:05:00.000Z',
  });
  log.recordAck({
    type: 'NACK',
    node: 'node-2',
    version: 3,
    configRevision: 1,
    error: 'ipset full',
    lastGoodVersion: 0,
    lastGoodConfigRevision: 0,
    at: '2025-01-01T00:06:00.000Z',
  });
  log.close();
}, 60_000);
afterAll(() => tmp.cleanup());

describe('switchboard db / replay / audit', () => {
  it('bin/switchboard replay --to-version prints the recorded hash (child process)', () => {
    const v = recorded[recorded.length - 1]!;
    const r = spawnSb('replay', '--db', file, '--to-version', String(v.version));
    expect(r.err).toBe('');
    expect(r.out).toBe(`version ${v.version} hash ${v.hash}\n`);
    expect(r.code).toBe(0);
    const bad = spawnSb('replay', '--db', file, '--to-version', '99999');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^switchboard: .*version 99999 does not exist.*\n$/);
  }, 120_000);

  it('replay --to-version prints the recorded hash for a plain version and a pin', async () => {
    const pinV =
      recorded.find((v, i) => i > 0 && recorded.slice(0, i).some((p) => p.hash === v.hash)) ??
      recorded[recorded.length - 1]!;
    for (const v of [recorded[0]!, pinV, recorded[recorded.length - 1]!]) {
      const r = await sb('replay', '--db', file, '--to-version', String(v.version));
      expect(r.err).toBe('');
      expect(r.out).toBe(`version ${v.version} hash ${v.hash}\n`);
      expect(r.code).toBe(0);
    }
    const j = JSON.parse((await sb('replay', '--db', file, '--json')).out);
    expect(j).toMatchObject({ version: recorded[recorded.length - 1]!.version, match: true });
  });

  it('replay: usage mistakes exit 2, a missing version exits 1 with one line', async () => {
    expect((await sb('replay', '--db', file, '--to-version', 'x')).code).toBe(2);
    expect((await sb('replay', '--db', file, '--to-version', '1', '--to-seq', '3')).code).toBe(2);
    const r = await sb('replay', '--db', file, '--to-version', '99999');
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/version 99999 does not exist/);
  });

  it('db status and verify on a good log; verify names a tampered row and exits 1', async () => {
    const status = (await sb('db', 'status', '--db', file)).out;
    expect(status).toMatch(/schemaVersion: 10/);
    expect(status).toMatch(/^fileBytes: [1-9]\d*$/m); // review4 G8: disk use and space left
    expect(status).toMatch(/^freeBytes: \d+$/m);
    // what retention keeps and how fast the log grows (review4 G8)
    expect(status).toMatch(/^oldestVersion: 1$/m);
    expect(status).toMatch(/^lastCompaction: never$/m);
    expect(status).toMatch(/^growthLastHour: \d+ bytes \(\d+ events, \d+ ACK\/NACK rows, \d+ versions/m);
    const ok = await sb('db', 'verify', '--db', file, '--deep');
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^ok: events \d+/);
    const copy = tmp.file('tampered.db');
    fs.copyFileSync(file, copy);
    const db = new Database(copy);
    db.prepare(`UPDATE events SET resource_version = '999999' WHERE seq = 12`).run();
    db.close();
    const bad = await sb('db', 'verify', '--db', copy);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/events row 12: .*edited/);
  });

  it('db backup writes a verifiable copy and refuses to overwrite', async () => {
    const out = path.join(tmp.dir, 'backup.db');
    expect((await sb('db', 'backup', '--db', file, out)).code).toBe(0);
    expect((await sb('db', 'verify', '--db', out)).code).toBe(0);
    expect((await sb('replay', '--db', out, '--to-version', '3')).out).toBe(`version 3 hash ${recorded[2]!.hash}\n`);
    const again = await sb('db', 'backup', '--db', file, out);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already exists/);
    expect((await sb('db', 'frobnicate', '--db', file)).code).toBe(2);
  });

  it('audit service, node, ops, diff and behind, as tables and JSON', async () => {
    const svc = JSON.parse((await sb('audit', '--db', file, 'service', 'default/svc-1', '--json')).out) as {
      event: { kind: string };
      version?: number;
      ackedBy: { node: string }[];
    }[];
    expect(svc.length).toBeGreaterThan(0);
    expect(new Set(svc.map((e) => e.event.kind))).toEqual(new Set(['Service', 'EndpointSlice']));
    expect(
      svc.some((e) => e.version !== undefined && e.version <= 2 && e.ackedBy.some((a) => a.node === 'node-1')),
    ).toBe(true);
    expect((await sb('audit', '--db', file, 'service', 'default/svc-1')).out).toMatch(/^SEQ +RECEIVED/);

    // Without --at: the node's latest ACK (an open upper bound, not a far-future date that sorts wrong).
    const latest = JSON.parse((await sb('audit', '--db', file, 'node', 'node-1', '--json')).out);
    expect(latest).toMatchObject({ node: 'node-1', ack: { version: 2, at: '2025-01-01T00:05:00.000Z' } });
    // --at is on the planner's clock (the row's received_at), not the node's `at` (review 2, R3).
    const received = latest.receivedAt as string;
    const node = JSON.parse((await sb('audit', '--db', file, 'node', 'node-1', '--at', received, '--json')).out);
    expect(node).toMatchObject({ node: 'node-1', ack: { version: 2 }, nodeStateVerified: true });
    const before = new Date(Date.parse(received) - 1).toISOString();
    expect(
      JSON.parse((await sb('audit', '--db', file, 'node', 'node-1', '--at', before, '--json')).out).ack,
    ).toBeUndefined();

    const ops = await sb('audit', '--db', file, 'ops');
    expect(ops.out).toMatch(/^ID +AT +KIND +ACTOR/);
    expect(ops.out).toMatch(/(pin|rollback) +test/);

    const diff = JSON.parse(
      (await sb('audit', '--db', file, 'diff', '1', String(recorded[recorded.length - 1]!.version), '--json')).out,
    );
    expect(
      diff.servicesAdded.length + diff.servicesChanged.length + diff.servicesRemoved.length + diff.nodesAdded.length,
    ).toBeGreaterThan(0);

    const behind = JSON.parse((await sb('audit', '--db', file, 'behind', '--json')).out) as {
      node: string;
      status: string;
    }[];
    expect(behind.map((b) => [b.node, b.status])).toEqual([
      ['node-1', 'BEHIND'],
      ['node-2', 'FAILED'],
    ]);
    expect((await sb('audit', '--db', file, 'nodes')).code).toBe(2);
    expect((await sb('audit', '--db', file, 'diff', '1')).code).toBe(2);
  });

  it('db compact keeps retained versions replayable and the copy verifiable', async () => {
    const copy = tmp.file('compact.db');
    fs.copyFileSync(file, copy);
    const mid = recorded[Math.floor(recorded.length / 2)]!;
    expect((await sb('db', 'compact', '--db', copy)).code).toBe(2);
    const r = await sb('db', 'compact', '--db', copy, '--before-version', String(mid.version), '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).eventsRemoved).toBeGreaterThan(0);
    expect((await sb('db', 'verify', '--db', copy, '--deep')).code).toBe(0);
    // db status says what it removed and from which version the log rebuilds
    const st = JSON.parse((await sb('db', 'status', '--db', copy, '--json')).out);
    expect(st.lastCompaction).toMatchObject({
      by: 'db compact',
      beforeVersion: mid.version,
      eventsRemoved: JSON.parse(r.out).eventsRemoved,
      versionsRemoved: JSON.parse(r.out).versionsRemoved,
      finishedAt: expect.any(String),
    });
    expect(st.oldestVersion).toBeLessThanOrEqual(mid.version);
    expect((await sb('db', 'status', '--db', copy)).out).toMatch(
      new RegExp(
        `^lastCompaction: \\S+ by db compact: \\d+ events \\(up to seq \\d+\\), \\d+ ACK/NACK rows and ${JSON.parse(r.out).versionsRemoved} version rows removed, keeping versions from ${mid.version} on`,
        'm',
      ),
    );
    for (const v of recorded.filter((x) => x.version >= mid.version)) {
      expect((await sb('replay', '--db', copy, '--to-version', String(v.version))).out).toBe(
        `version ${v.version} hash ${v.hash}\n`,
      );
    }
    // Where a republish starts from now (review2 R8): every version from it replays, the one
    // before it does not, and compaction said so on stderr.
    const log = await EventLog.open({ file: copy });
    try {
      const from = replayableFrom(log)!;
      expect(from).toBeGreaterThan(1);
      expect(from).toBeLessThanOrEqual(mid.version);
      for (const v of recorded.filter((x) => x.version >= from && x.version < mid.version))
        expect(replayVersion(log, v.version).hash).toBe(v.hash);
      // its row is kept (the parent of the first rebuildable one), yet it answers as a removed one (probe11 K3)
      expect(() => replayVersion(log, from - 1)).toThrow(
        `version ${from - 1} was compacted from the log (it rebuilds versions from ${from} on)`,
      );
      expect(r.err).toBe(
        `note: db compact: versions before ${from} can no longer be rebuilt: should the versions stream lose them (NATS restarted without its store), the planner republishes from version ${from}, as a checkpoint\n`,
      );
      // an audit with nothing left to show says the log was cut, not that nothing ever happened
      expect((await sb('audit', '--db', copy, 'service', 'default/never-was')).out).toBe(
        `no events for service default/never-was (events before seq ${log.oldestSeq()} were compacted away)\n`,
      );
    } finally {
      log.close();
    }
  });

  it('db compact and db migrate refuse a log a planner holds (writer lock, holder named, exit 1); read-only db tools do not', async () => {
    const copy = tmp.file('held.db');
    fs.copyFileSync(file, copy);
    const held = await EventLog.open({ file: copy, writer: 'a planner', sync: 'normal' });
    try {
      const oldest = held.oldestSeq();
      for (const args of [
        ['db', 'compact', '--db', copy, '--before-version', '3'],
        ['db', 'migrate', '--db', copy],
      ]) {
        const r = await sb(...args);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.out).toBe('');
        expect(r.err).toMatch(
          /^switchboard: .*held\.db: in use by another process \(a planner, pid \d+ on .* since .*\)\n$/,
        );
      }
      expect(held.oldestSeq()).toBe(oldest); // nothing compacted under the holder
      expect((await sb('db', 'status', '--db', copy)).code).toBe(0);
    } finally {
      held.close();
    }
    expect((await sb('db', 'compact', '--db', copy, '--before-version', '3')).code).toBe(0); // released: it runs
  });
});
