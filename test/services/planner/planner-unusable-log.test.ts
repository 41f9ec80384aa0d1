// A running planner whose log file turns unusable (probe8 D1/D2: its -wal and -shm deleted by an
// operator): it says so once, /readyz and /status name the file's problem, no new version is
// published (nodes keep what they run), and the leader steps down for good.

import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, plannerOptions, svcYaml, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv | undefined;
let planner: RunningPlanner | undefined;
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env?.cleanup();
  env = undefined;
});

/** The fields of /readyz and /status read here. */
interface Body {
  reason?: string;
  self: { leader: boolean };
  storage: { fileProblem: string | null };
  notReady: string | null;
  latestVersion: number;
}

describe('a planner whose log file turns unusable', () => {
  it('stops publishing, says why on /readyz, /status and stderr (once), and leaves the lease for good', async () => {
    env = await plannerEnv();
    const db = env.db;
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    env.write('a.yaml', svcYaml('a', '10.96.0.1'));
    const said: string[] = [];
    planner = await runPlanner({
      ...plannerOptions(env),
      logFileCheckMs: 100,
      leaseTtlMs: 1000,
      say: (l) => said.push(l),
    });
    await planner.planner.synced;
    const url = planner.url;
    const get = async (path: string) => {
      const res = await fetch(url + path);
      return { status: res.status, body: (await res.json()) as Body };
    };
    await expect.poll(async () => (await get('/readyz')).status, { timeout: 10_000 }).toBe(200);
    const published = planner.planner.data.latest()!.version;
    expect((await get('/status')).body.storage.fileProblem).toBeNull();

    fs.rmSync(`${env.db}-wal`);
    fs.rmSync(`${env.db}-shm`);
    await expect
      .poll(async () => (await get('/readyz')).body.reason, { timeout: 10_000 })
      .toMatch(
        /log file: .*log\.db is unusable: .*log\.db-wal was deleted while open; a rescue checkpoint copied what it held/,
      );
    expect((await get('/readyz')).status).toBe(503);
    // Stepped down, and it does not stand again (its TTL of hold-off is long over after 3 s).
    await expect.poll(async () => (await get('/status')).body.self.leader, { timeout: 10_000 }).toBe(false);
    env.write('b.yaml', svcYaml('b', '10.96.0.2'));
    await new Promise((r) => setTimeout(r, 3000));
    const status = (await get('/status')).body;
    expect(status.self.leader).toBe(false);
    expect(status.storage.fileProblem).toMatch(/log\.db-wal was deleted while open/);
    expect(status.notReady).toMatch(/log file: /);
    expect(status.latestVersion).toBe(published); // no version for b.yaml: nodes keep what they run
    // said once as such (the lines of steps it fails, such as the replicated log's retries, name it too)
    expect(said.filter((l) => l.startsWith(`${db} is unusable`))).toHaveLength(1);
  }, 30_000);
});
