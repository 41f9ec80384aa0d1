import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { untilSynced } from '../../../services/cli/commands/ctl-wait.ts';
import type { RunningPlanner } from '../../../services/planner/run-planner.ts';
import { startDryRunApplier, startGroupPlanner } from '../../ha/in-process-group.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, type PlannerEnv } from './planner-support.ts';

/**
 * probe14 P3: a leader cut off from NATS still makes versions of what its source sees, and cannot
 * publish them. Its /status measured every node against that version, with the clock of the
 * target before it: all nodes STALE "target 2 … set 69 s ago", a target never set (seen in a netns
 * lab for the seconds until it stepped down). A node is measured against what it was told; the
 * version not out yet keeps `ctl wait --for=synced` waiting.
 */
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const rowOf = (p: RunningPlanner) => p.planner.status().find((r) => r.node === 'node-1');

describe('a version the leader made but could not publish', () => {
  it('does not make the nodes STALE against a target nobody was given', async () => {
    // the apply timeout is shorter than the wait below, the lease far longer: the planner still
    // leads (suspended) while NATS is away and the version is made
    const p = await startGroupPlanner(env, stops, {
      id: 'a',
      db: env.db,
      leaseTtlMs: 60_000,
      statusThresholds: { silenceMs: 30_000, applyTimeoutMs: 200 },
    });
    await p.planner.synced;
    await startDryRunApplier(env, stops, 'node-1');
    await expect.poll(() => rowOf(p)?.status, { timeout: 15_000 }).toBe('SYNCED');
    await new Promise((r) => setTimeout(r, 400)); // target 1 older than the apply timeout

    await env.nats.kill();
    env.write('b.yaml', svcYaml('b', '10.96.0.2'));
    await expect.poll(() => p.planner.data.latest()?.version, { timeout: 15_000 }).toBe(2);
    expect(p.group.role()).toBe('leader');
    const row = rowOf(p);
    expect(row).toMatchObject({ status: 'SYNCED', targetVersion: 1, appliedVersion: 1 });
    // ctl wait does not take it as done: the newest version reached no node
    const check = untilSynced({
      synced: true,
      latestVersion: 2,
      nodes: [row],
      notReady: null,
      group: 'switchboard',
      leader: {},
    });
    expect(check).toMatchObject({ done: false, line: expect.stringContaining('node-1 told version 1 only') });
  }, 60_000);
});
