import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { heartbeatSubject } from '../../../libs/bus/index.ts';
import { DEFAULT_WAVE_POLICY } from '../../../libs/control/index.ts';
import type { Heartbeat } from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import type { Planner } from '../../../services/planner/planner.ts';
import {
  ack,
  nodeYaml,
  plannerEnv,
  sendAck,
  sliceYaml,
  startBarePlanner,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';

// Review finding F4: a planner restarted mid-rollout seeds each wave node's last logged ACK. The
// time that seed is given must never be a node's clock in the future, or later reports (an
// unhealthy heartbeat) and silence are ignored while the stale ACK keeps the node SYNCED.

let env: PlannerEnv;
const stops: (() => Promise<void>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

async function start(): Promise<Planner & { stopAll: () => Promise<void> }> {
  const p = await startBarePlanner(env, 'planner.db', {
    statusThresholds: { silenceMs: 1500, applyTimeoutMs: 60_000 },
  });
  stops.push(p.stop);
  return Object.assign(p.planner, { stopAll: p.stop });
}

it('a restarted planner never takes a node clock ahead of its own as the time of the seeded ACK', async () => {
  const a = await start();
  const hashes = (p: Planner, node: string, rev: number) => ({
    node: nodeStateHash(renderNodeState(p.data.publishedData(), node, p.config.revision(rev)!.config)),
    data: p.data.latest()!.hash,
  });
  for (const n of ['node-1', 'node-2']) {
    const h = hashes(a, n, 1);
    await sendAck(env.nc, ack(n, 1, 1, h.node, h.data));
  }
  await until(() => a.status().every((n) => n.status === 'SYNCED'), 3000, 'SYNCED');
  await a.configChange({ scheduler: 'wrr' }, { actor: 'tester', reason: 'try wrr' }, 'config', {
    waves: [
      { kind: 'count', n: 1 },
      { kind: 'percent', p: 100 },
    ],
    pauseOnError: false,
    policy: { ...DEFAULT_WAVE_POLICY, bakeMs: 300_000 },
  });
  const first = a.config.state.rollout!.waves[0]![0]!;
  const h = hashes(a, first, 2);
  // the node's clock is an hour ahead of the planner's
  const ahead = new Date(Date.now() + 3_600_000).toISOString();
  await sendAck(env.nc, { ...ack(first, 1, 2, h.node, h.data), at: ahead });
  await until(() => a.config.state.rollout?.bakeStartedAt, 3000, 'wave 1 baking');
  await a.stopAll();

  const b = await start();
  const row = () => b.status().find((n) => n.node === first)!;
  expect(row().status).toBe('SYNCED'); // the seeded ACK: the node runs its target
  const hb: Heartbeat = {
    node: first,
    appliedVersion: 1,
    appliedConfigRevision: 2,
    mode: 'ipvs',
    healthy: false,
    detail: 'resync: the kernel does not match version 1 after a repair',
    at: ahead,
  };
  env.nc.publish(heartbeatSubject(first), JSON.stringify(hb));
  await env.nc.flush();
  await until(() => row().status === 'ERROR', 3000, 'the unhealthy heartbeat counts');
  expect(row().reason).toBe(`unhealthy: ${hb.detail}`);
  // then silence: the node is UNKNOWN once silenceMs passed, whatever its clock said
  await until(() => row().status === 'UNKNOWN', 5000, 'UNKNOWN after silence');
  expect(row().reason).toMatch(/^silent for \d+ s$/);
});

it("a restarted planner keeps every node's logged ACK: the hash proof and last report survive (probe F7); silence is monotonic (review4 G6)", async () => {
  const a = await start();
  const atA = new Date(Date.now() - 500).toISOString();
  for (const n of ['node-1', 'node-2']) {
    const h = {
      node: nodeStateHash(renderNodeState(a.data.publishedData(), n, a.config.revision(1)!.config)),
      data: a.data.latest()!.hash,
    };
    await sendAck(env.nc, { ...ack(n, 1, 1, h.node, h.data), at: atA });
  }
  await until(() => a.status().every((n) => n.status === 'SYNCED' && n.hashMatch === true), 3000, 'SYNCED');
  // Node silence is measured on the monotonic clock (review4 G6): the words read with the wall and
  // monotonic clocks moved apart as an NTP step moves them (synchronously: nothing else runs meanwhile).
  const wordsAt = (wallMs: number, monoMs: number) => {
    const wall = vi.spyOn(Date, 'now').mockReturnValue(Date.now() + wallMs);
    const mono = vi.spyOn(performance, 'now').mockReturnValue(performance.now() + monoMs);
    try {
      return a.status().map((n) => n.status);
    } finally {
      wall.mockRestore();
      mono.mockRestore();
    }
  };
  // 2 s of silence (silenceMs 1500) with the wall clock stepped an hour back: before, SYNCED for the hour
  expect(wordsAt(-3_600_000, 2_000)).toEqual(['UNKNOWN', 'UNKNOWN']);
  // no silence, the wall clock stepped an hour ahead: before, "silent for 3600 s" until the next report
  expect(wordsAt(3_600_000, 0)).toEqual(['SYNCED', 'SYNCED']);
  await a.stopAll();

  const b = await start(); // no rollout: before, only a rollout's wave nodes were seeded
  expect(b.status().map((n) => [n.node, n.status, n.hashMatch, n.lastReportAt])).toEqual([
    ['node-1', 'SYNCED', true, atA],
    ['node-2', 'SYNCED', true, atA],
  ]);
});

it("a restarted planner dates each seeded report when a planner received it, not by the node's clock (a clock behind)", async () => {
  const slow = async () => {
    const p = await startBarePlanner(env, 'planner.db', {
      statusThresholds: { silenceMs: 60_000, applyTimeoutMs: 60_000 },
    });
    stops.push(p.stop);
    return p;
  };
  const a = await slow();
  const behind = new Date(Date.now() - 600_000).toISOString(); // the node's clock is 10 minutes behind
  for (const n of ['node-1', 'node-2']) {
    const h = {
      node: nodeStateHash(renderNodeState(a.planner.data.publishedData(), n, a.planner.config.revision(1)!.config)),
      data: a.planner.data.latest()!.hash,
    };
    await sendAck(env.nc, { ...ack(n, 1, 1, h.node, h.data), at: behind });
  }
  await until(() => a.planner.status().every((n) => n.status === 'SYNCED'), 3000, 'SYNCED');
  await a.stop();

  const b = await slow();
  // heard seconds ago by the planner: not "silent for 600 s" because the node's clock is behind
  expect(b.planner.status().map((n) => [n.node, n.status, n.lastReportAt])).toEqual([
    ['node-1', 'SYNCED', behind],
    ['node-2', 'SYNCED', behind],
  ]);
});
