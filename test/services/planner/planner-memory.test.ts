import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, plannerOptions, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';

const run = promisify(execFile);
const BIN = new URL('../../../bin/switchboard', import.meta.url).pathname;

/**
 * The planner's heap against the limit V8 stops it at (services/cli/heap-headroom.ts): on /status as
 * `memory` and in its metrics, from the HeapWatch the CLI starts before the initial sync.
 */
let env: PlannerEnv;
let planner: RunningPlanner | undefined;
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

const json = async (url: string) => (await (await fetch(url)).json()) as Record<string, any>;
const metric = async (base: string, name: string) =>
  Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${base}/metrics`)).text())?.[1]);

describe("the planner's heap", () => {
  it('is on /status (memory, with the warning) and in /metrics as the heap watch last read it', async () => {
    const warning = 'heap 430 MB in use after a full collection, 82 % of its 524 MB limit (…)';
    const heap = { reading: { liveBytes: 430e6, limitBytes: 524e6 }, warning: warning as string | undefined };
    planner = await runPlanner({ ...plannerOptions(env), say: () => {}, heap });
    await planner.planner.synced;
    expect((await json(`${planner.url}/status`)).memory).toEqual({ liveBytes: 430e6, limitBytes: 524e6, warning });
    expect(await metric(planner.url, 'switchboard_planner_heap_live_bytes')).toBe(430e6);
    expect(await metric(planner.url, 'switchboard_planner_heap_limit_bytes')).toBe(524e6);
    // `ctl status` says it under its head line, as it says little disk
    // (not spawnSync: the planner answering it runs in this process)
    const status = () => run(process.execPath, [BIN, 'ctl', '--server', planner!.url, 'status'], { encoding: 'utf8' });
    expect((await status()).stdout).toContain(`\nWARNING: planner ${warning}\n`);
    heap.reading = { liveBytes: 300e6, limitBytes: 524e6 };
    heap.warning = undefined;
    expect((await json(`${planner.url}/status`)).memory).toEqual({
      liveBytes: 300e6,
      limitBytes: 524e6,
      warning: null,
    });
  });

  it('a planner without a heap watch shows memory null and 0', async () => {
    planner = await runPlanner({ ...plannerOptions(env), say: () => {} });
    await planner.planner.synced;
    expect((await json(`${planner.url}/status`)).memory).toBeNull();
    expect(await metric(planner.url, 'switchboard_planner_heap_limit_bytes')).toBe(0);
  });

  it("`switchboard planner` reads its heap after the sync's full collection, against the limit V8 set for it", async () => {
    const flags = '--max-old-space-size=200 --max-semi-space-size=1';
    const limit = Number(
      execFileSync(process.execPath, [...flags.split(' '), '-p', 'require("v8").getHeapStatistics().heap_size_limit'], {
        encoding: 'utf8',
      }),
    );
    const child = spawn(
      BIN,
      ['planner', '--manifests', env.manifests, '--nats', env.nats.url, '--db', env.db, '--http', '127.0.0.1:0'],
      { env: { ...process.env, NODE_OPTIONS: flags }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      const url = (await until(() => /HTTP API on (\S+)/.exec(stderr)?.[1], 20_000, 'the API')).toString();
      await until(() => stderr.includes('planner: synced'), 20_000, 'synced');
      const memory = await until(async () => (await json(`${url}/status`)).memory, 10_000, 'a reading');
      expect(memory.limitBytes).toBe(limit);
      expect(memory.liveBytes).toBeGreaterThan(1e6);
      expect(memory.liveBytes).toBeLessThan(0.8 * limit);
      expect(memory.warning).toBeNull();
      expect(stderr).not.toContain('heap ');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 60_000);
});
