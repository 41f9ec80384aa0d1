import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { ManifestsSource } from '../../../libs/kube/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { knownObjectsFromLog, manifestsSource } from '../../../services/planner/event-source.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { Planner } from '../../../services/planner/planner.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
const stops: (() => unknown)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await Promise.resolve(s()).catch(() => undefined);
  await env.cleanup();
});

/** A planner on the manifests of `env`, checkpointing every version, started and synced. */
async function startSynced(log: EventLog, bus: NatsPlannerBus): Promise<Planner> {
  const planner = new Planner({
    log,
    bus,
    initialConfig: DEFAULT_PROXY_CONFIG,
    checkpointEvery: 1,
    debounceMs: 10,
    source: (sink, hooks) =>
      manifestsSource(
        (m) => new ManifestsSource({ dir: env.manifests, ...m, known: knownObjectsFromLog(log), debounceMs: 10 }),
        sink,
        hooks,
      ),
  });
  stops.push(() => planner.stop());
  await planner.start();
  await planner.synced;
  return planner;
}

describe('a due checkpoint does not hold a version back', () => {
  it('version 1 is on the bus before the checkpoint it made due is written; the checkpoint follows as its own step', async () => {
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    for (let i = 0; i < 5; i++)
      env.write(`s${i}.yaml`, svcYaml(`s${i}`, `10.96.0.${i + 1}`) + '---\n' + sliceYaml(`s${i}`, [`10.0.0.${i + 1}`]));
    const log = await EventLog.open({ file: env.db });
    stops.push(() => log.close());
    // What the log held at each bus write (the real NATS bus; the hook runs before every write).
    const atWrites: { checkpoints: number; version: number }[] = [];
    const bus = await NatsPlannerBus.open({
      nc: env.nc,
      beforeWrite: async () => {
        atWrites.push({ checkpoints: log.checkpoints().length, version: log.latestVersion()?.version ?? 0 });
      },
    });
    stops.push(() => bus.close());
    const planner = await startSynced(log, bus);
    expect(atWrites[0]).toEqual({ checkpoints: 0, version: 1 }); // publishing version 1: no checkpoint yet
    await until(() => log.checkpoints().length > 0, 5000, 'the checkpoint');
    const cps = log.checkpoints();
    expect(cps[0]!.seq).toBe(log.version(1)!.seqTo); // of exactly the state version 1 published
    expect(cps[0]!.dataHash).toBe(log.version(1)!.hash);
    expect(planner.lastError).toBeUndefined();
  });

  it('the initial list is written with WAL checkpoints held; they are released after version 1 is published and checkpointed', async () => {
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    for (let i = 0; i < 3; i++)
      env.write(`s${i}.yaml`, svcYaml(`s${i}`, `10.96.0.${i + 1}`) + '---\n' + sliceYaml(`s${i}`, [`10.0.0.${i + 1}`]));
    const log = await EventLog.open({ file: env.db });
    stops.push(() => log.close());
    const order: string[] = [];
    const hold = log.holdWalCheckpoints.bind(log);
    log.holdWalCheckpoints = () => {
      order.push(`hold at seq ${log.lastSeq()}`);
      const release = hold();
      return () => {
        order.push(
          `release at version ${log.latestVersion()?.version ?? 0}, ${log.checkpoints().length} checkpoint(s)`,
        );
        release();
      };
    };
    const bus = await NatsPlannerBus.open({
      nc: env.nc,
      beforeWrite: async () => {
        if (!order.includes('bus write')) order.push('bus write');
      },
    });
    stops.push(() => bus.close());
    const planner = await startSynced(log, bus);
    await until(() => order.length === 3, 5000, 'the release');
    expect(order).toEqual(['hold at seq 0', 'bus write', 'release at version 1, 1 checkpoint(s)']);
    expect(log.lastSeq()).toBe(7); // the node, 3 services, 3 slices
    expect(planner.lastError).toBeUndefined();
  });
});
