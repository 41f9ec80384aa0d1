// Source errors are visible where operators look (ctl status, /readyz, a metric), not only in
// /status JSON, and clear once the source works again (issue 10 item 4).

import { renameSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { main } from '../../../services/cli/main.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, svcYaml, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv | undefined;
let planner: RunningPlanner | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await planner?.stop();
  planner = undefined;
  await env?.cleanup();
  env = undefined;
});

async function ctlStatusHead(url: string): Promise<string> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s) => { out += String(s); return true; });
  try {
    expect(await main(['ctl', '--server', url, 'status'])).toBe(0);
  } finally {
    spy.mockRestore();
  }
  return out.split('\n')[0]!;
}

describe('planner source errors', () => {
  it('show in /readyz, /status, ctl status and a metric while the manifests directory is gone, and clear when it is back', async () => {
    env = await plannerEnv();
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    env.write('a.yaml', svcYaml('a', '10.96.0.1'));
    planner = await runPlanner({ manifests: env.manifests, nats: env.nats.url, db: env.db, http: '127.0.0.1:0', config: DEFAULT_PROXY_CONFIG, debounceMs: 20, pollMs: 100 });
    await planner.planner.synced;
    const url = planner.url;
    const get = async (path: string) => {
      const res = await fetch(url + path);
      const text = await res.text();
      return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
    };
    expect((await get('/readyz')).status).toBe(200);
    expect((await get('/metrics')).text).toMatch(/^switchboard_planner_source_up 1$/m);

    renameSync(env.manifests, `${env.manifests}.away`);
    await expect.poll(async () => (await get('/readyz')).status, { timeout: 10_000 }).toBe(503);
    const ready = (await get('/readyz')).json();
    expect(ready).toMatchObject({ ready: false, sourceError: expect.stringMatching(/^manifests directory .* does not exist$/) });
    expect(ready.reason).toMatch(/^event source failing: manifests directory/);
    expect((await get('/status')).json().sourceError).toBe(ready.sourceError);
    expect((await get('/metrics')).text).toMatch(/^switchboard_planner_source_up 0$/m);
    expect(await ctlStatusHead(url)).toMatch(/, SOURCE FAILING: manifests directory .* does not exist$/);
    // The published version stays (nothing is withdrawn because the directory went away).
    expect([...planner.planner.data.publishedData().services()].map((s) => s.key)).toEqual(['default/a']);

    renameSync(`${env.manifests}.away`, env.manifests);
    await expect.poll(async () => (await get('/readyz')).status, { timeout: 10_000 }).toBe(200);
    expect((await get('/status')).json().sourceError).toBeNull();
    expect((await get('/status')).json().source).not.toHaveProperty('lastError');
    expect((await get('/metrics')).text).toMatch(/^switchboard_planner_source_up 1$/m);
    expect(await ctlStatusHead(url)).not.toMatch(/SOURCE FAILING/);
  });
});
