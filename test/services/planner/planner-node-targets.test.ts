import { jetstreamManager } from '@nats-io/jetstream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TargetStore } from '../../../libs/bus/index.ts';
import { nodeYaml, plannerEnv, startBarePlanner, svcYaml, until, type PlannerEnv } from './planner-support.ts';

// probe9 K1: the planner removes the sb_targets key of a Node deleted from the cluster, and keeps
// the key of a Node that exists. Real nats-server, real planner over manifests.

let env: PlannerEnv;
const stops: (() => Promise<void>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

/** The bucket's `node.` subjects that still hold a message. */
async function nodeKeys(): Promise<string[]> {
  const jsm = await jetstreamManager(env.nc);
  const info = await jsm.streams.info('KV_sb_targets', { subjects_filter: '$KV.sb_targets.node.>' });
  return Object.keys(info.state.subjects ?? {})
    .map((s) => s.slice('$KV.sb_targets.'.length))
    .sort();
}

describe('planner: targets of deleted Nodes (probe9 K1)', () => {
  it('removes the key of a Node gone from the cluster at the next target move, and keeps those of Nodes that exist', async () => {
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
    env.write('a.yaml', svcYaml('a', '10.96.0.1'));
    // keys an earlier planner left: node-1's and node-2's overrides (cleared since), and that of
    // node-9, deleted while no planner ran
    const earlier = await TargetStore.open({ nc: env.nc });
    for (const n of ['node-1', 'node-2', 'node-9']) {
      await earlier.setNodeTarget(n, { version: 1, configRevision: 0 });
      await earlier.clearNodeTarget(n);
    }
    expect(await nodeKeys()).toEqual(['node.node-1', 'node.node-2', 'node.node-9']);

    const p = await startBarePlanner(env, 'log.db');
    stops.push(p.stop);
    await until(async () => (await nodeKeys()).length === 2 || undefined, 10_000, 'node-9 key removed');
    expect(await nodeKeys()).toEqual(['node.node-1', 'node.node-2']);

    // node-2 deleted from the cluster: a new version, its key goes; node-1's stays
    const before = p.log.latestVersion()!.version;
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    await until(() => (p.log.latestVersion()!.version > before ? true : undefined), 10_000, 'a new version');
    await until(async () => (await nodeKeys()).length === 1 || undefined, 10_000, 'node-2 key removed');
    expect(await nodeKeys()).toEqual(['node.node-1']);
  });
});
