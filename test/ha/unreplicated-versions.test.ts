import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN } from '../faults/fleet.ts';
import type { RunningPlanner } from '../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, type PlannerEnv } from '../services/planner/planner-support.ts';
import { startDryRunApplier, startGroupPlanner } from './in-process-group.ts';

/**
 * Versions a leader makes while its replicated log cannot reach NATS (probe21 follow-up: under a
 * NATS kill -9 churn the leader said latestVersion 8 while the group's log, and later the group,
 * held 4). A version is published only after the flush that ships its rows to the group's log
 * (NatsPlannerBus.guard: beforeWrite), so such a version reaches neither the versions stream nor a
 * node; the group drops it (the follower's catch-up truncates rows past the group's end) and the
 * next leader may make other content under its number. /status said nothing of it: its
 * `latestVersion` counted it. `notInGroupLog` now names those versions.
 */
const NODES = ['node-1', 'node-2'];
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', NODES.map((n, i) => nodeYaml(n, `192.0.2.${i + 1}`)).join('---\n'));
  env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', ['10.0.0.1'])}`);
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

interface Status {
  latestVersion: number;
  latestHash: string | null;
  notInGroupLog: { from: number; to: number; why: string } | null;
  leader: { id: string } | null;
  nodes: { node: string; status: string; appliedVersion?: number }[];
}
const status = async (p: RunningPlanner) => (await fetch(`${p.url}/status`)).json() as Promise<Status>;
const fileVersions = (file: string) => {
  const d = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = d.prepare('SELECT version, hash FROM versions').all() as { version: number; hash: string }[];
    return new Map(rows.map((r) => [r.version, r.hash]));
  } finally {
    d.close();
  }
};

describe('versions made while the group log is out of reach', () => {
  it('are named on /status as not in the group log, never reach the stream or a node, and a number the group reuses carries only the group content', async () => {
    const dbs = { a: env.db, b: path.join(env.dir, 'b.db') };
    const a = await startGroupPlanner(env, stops, { id: 'a', db: dbs.a });
    await a.planner.synced;
    const b = await startGroupPlanner(env, stops, { id: 'b', db: dbs.b });
    const appliers = [];
    for (const n of NODES) appliers.push(await startDryRunApplier(env, stops, n, 200));
    const synced = async (p: RunningPlanner, v: number) => {
      const s = await status(p);
      return s.nodes.length === NODES.length && s.nodes.every((n) => n.status === 'SYNCED' && n.appliedVersion === v);
    };
    await expect.poll(() => synced(a, 1), { timeout: 15_000 }).toBe(true);
    expect((await status(a)).notInGroupLog).toBeNull();

    // NATS gone (kill -9), then a change: the leader commits version 2 to its file; its flush cannot
    // ship it, so it is not published.
    await env.nats.kill();
    env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', ['10.0.0.2'])}`);
    await expect.poll(async () => (await status(a)).latestVersion, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    const local = await status(a);
    expect(local.notInGroupLog).toMatchObject({ from: 2, to: local.latestVersion });
    expect(local.notInGroupLog?.why).toContain("not in the group's log (newest there: 1)");
    // ctl status says it too, in the planner's words
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'ctl', '--server', a.url, 'status'], {
      encoding: 'utf8',
    });
    expect(stdout).toMatch(
      /^WARNING: versions? 2(-\d+)? (is|are) in this planner's file only, not in the group's log \(newest there: 1\)/m,
    );
    const aOwn = fileVersions(dbs.a).get(2);
    expect(aOwn).toBeDefined();
    for (const svc of appliers) expect(svc.session()?.status().applied?.version).toBe(1);

    // NATS back: whoever leads, the group ends with one history; every node runs its content.
    await env.nats.start();
    const settled = async () => {
      const [sa, sb] = await Promise.all([status(a), status(b)]);
      const leader = sa.leader?.id === 'a' ? sa : sb;
      return (
        sa.leader !== null &&
        sa.leader.id === sb.leader?.id &&
        leader.latestVersion >= 2 &&
        sa.notInGroupLog === null &&
        sb.notInGroupLog === null &&
        sa.latestHash === sb.latestHash &&
        (await synced(a, leader.latestVersion)) &&
        (await synced(b, leader.latestVersion))
      );
    };
    await expect.poll(settled, { timeout: 30_000, interval: 200 }).toBe(true);

    const group = fileVersions(dbs.b);
    expect(fileVersions(dbs.a)).toEqual(group);
    for (const svc of appliers) {
      const applied = svc.session()?.status().applied;
      expect(applied && group.get(applied.version)).toBe(applied?.dataHash);
    }
    // Every version on the stream carries the group log's content for its number.
    const nc = await connect({ servers: env.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info('SB_VERSIONS');
      let checked = 0;
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage('SB_VERSIONS', { seq }).catch(() => undefined);
        const v = Number(m?.header?.get('Sb-Version'));
        const h = m?.header?.get('Sb-Hash');
        if (!m || !v || !h) continue;
        expect(h, `stream seq ${seq} version ${v}`).toBe(group.get(v));
        checked++;
      }
      expect(checked).toBeGreaterThanOrEqual(2);
    } finally {
      await nc.close();
    }
  }, 60_000);
});
