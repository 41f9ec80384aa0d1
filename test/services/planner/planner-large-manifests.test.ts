// probe10 H9: a large manifests change must not hold the planner's event loop for its decode. The
// file is decoded on the manifest decoder's worker thread, so meanwhile the planner answers HTTP
// and keeps renewing its lease (before, the decode blocked the loop past the lease TTL: it stepped
// down, and every new term decoded the same file again). Behaviour only: no durations asserted
// (bench/sources/manifests-decode-bench.ts measures the longest block).

import { afterEach, describe, expect, it } from 'vitest';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { endpointSlice, service } from '../../libs/kube/manifest-fixtures.ts';
import { nodeYaml, plannerEnv, plannerOptions, svcYaml, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv | undefined;
let planner: RunningPlanner | undefined;
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env?.cleanup();
  env = undefined;
});

interface Status {
  self: { leader: boolean; term: number };
  rejected: { kind?: string; name?: string; reason?: string }[];
  latestVersion: number;
  source: { decodingFiles?: number };
}

describe('a planner given a large manifests file', () => {
  it('answers /status while the file is decoded and keeps its lease (no step-down, same term); a slice over 1000 endpoints is rejected alone', async () => {
    env = await plannerEnv();
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    env.write('a.yaml', svcYaml('a', '10.96.0.1'));
    const said: string[] = [];
    planner = await runPlanner({
      ...plannerOptions(env),
      // a decode on the event loop of this file (10 000 endpoints: seconds on a loaded 2-core
      // machine) held it past 3/4 of this TTL
      leaseTtlMs: 3000,
      say: (l) => said.push(l),
    });
    const status = async () => (await (await fetch(`${planner!.url}/status`)).json()) as Status;
    await expect.poll(async () => (await status()).latestVersion, { timeout: 10_000 }).toBeGreaterThan(0);
    const before = await status();
    expect(before.self.leader).toBe(true);

    env.write(
      'big.yaml',
      service('big') +
        Array.from({ length: 10 }, (_, s) => endpointSlice(`big-${s}`, 'big', 1000, 1 + s)).join('') +
        endpointSlice('big-over', 'big', 1001, 50), // over the API server's limit: rejected alone
    );
    let answeredWhileDecoding = 0;
    let after = before;
    while (after.latestVersion === before.latestVersion) {
      after = await status();
      if ((after.source.decodingFiles ?? 0) > 0) answeredWhileDecoding += 1;
      expect(said.filter((l) => l.startsWith('stepping down'))).toEqual([]);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(answeredWhileDecoding).toBeGreaterThan(0); // the HTTP API answered while the file was being decoded
    expect(said.filter((l) => l.startsWith('stepping down'))).toEqual([]);
    expect([after.self.leader, after.self.term]).toEqual([true, before.self.term]); // never lost the lease
    expect(planner.planner.data.latest()!.version).toBe(after.latestVersion);
    await expect
      .poll(async () => (await status()).rejected.filter((r) => r.name === 'big-over'), { timeout: 10_000 })
      .toEqual([
        expect.objectContaining({
          kind: 'EndpointSlice',
          reason: "1001 endpoints, over 1000 (the API server's limit)",
        }),
      ]);
  }, 60_000);
});
