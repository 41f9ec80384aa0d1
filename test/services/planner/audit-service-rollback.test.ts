import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../services/cli/main.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, plannerOptions, svcYaml, until, type PlannerEnv } from './planner-support.ts';

// probe11 K4 end to end: a Service deleted from the manifests, then `rollback --to-version` to a
// version that had it: the planner serves it again, and `audit service` (read-only on the running
// planner's file) now says so instead of ending with DELETED.

let env: PlannerEnv;
let planner: RunningPlanner;

beforeAll(async () => {
  env = await plannerEnv();
  env.write('node-1.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('s1.yaml', svcYaml('s1', '10.100.11.1'));
  env.write('s2.yaml', svcYaml('s2', '10.100.11.2'));
  planner = await runPlanner({
    ...plannerOptions(env),
    say: () => {},
  });
  await planner.planner.synced;
});
afterAll(async () => {
  await planner?.stop();
  await env?.cleanup();
});

async function audit(...args: string[]): Promise<string> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  try {
    expect(await main(['audit', '--db', env.db, ...args])).toBe(0);
  } finally {
    spy.mockRestore();
  }
  return out;
}

describe('audit service after a rollback that serves a deleted Service again (probe11 K4)', () => {
  it('names the rollback version, its actor and that the Service is present again; now: present', async () => {
    const p = planner.planner;
    const withS2 = p.data.latest()!.version;
    rmSync(path.join(env.manifests, 's2.yaml'));
    await until(() => p.data.latest()!.version > withS2, 5000, 'the deletion made a version');
    const res = await fetch(`${planner.url}/rollback`, {
      method: 'POST',
      headers: { 'x-switchboard-actor': 'alice' },
      body: JSON.stringify({ toVersion: withS2, reason: 'rb (has s2)' }),
    });
    expect(res.status).toBe(200);
    const held = p.data.latest()!.version;
    expect([...p.data.publishedData().services()].map((s) => s.key)).toContain('default/s2');

    const text = await audit('service', 'default/s2');
    expect(text).toMatch(/\sDELETED\s+s2\s/);
    expect(text).toContain(`v${held} rollback to ${withS2} by alice ("rb (has s2)"): Service present again (RV `);
    expect(text).toContain(
      `now: version ${held} (version ${withS2}'s content, held by a pin/rollback): Service default/s2 present`,
    );
    const json = JSON.parse(await audit('service', 'default/s2', '-o', 'json')) as {
      event: { type: string };
      after?: { version: number; service: string; latest: boolean }[];
      now?: { version: number; service: string; held: boolean };
    }[];
    expect(json.at(-1)).toMatchObject({
      event: { type: 'DELETED' },
      after: [{ version: held, service: 'present', latest: true }],
      now: { version: held, service: 'present', held: true },
    });
  });
});
