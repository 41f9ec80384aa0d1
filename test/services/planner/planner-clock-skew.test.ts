import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { BIN, freePort } from '../../faults/fleet.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';
import { skewedClockEnv, skewedClockMissing } from '../../support/skewed-clock.ts';

// probe12 L1–L3: a planner whose wall clock is an hour ahead (an RTC not synced yet, a replica on a
// skewed host) ended a 30 min canary bake the moment it took over a rollout, and stamped versions,
// ACKs and operations an hour in the future. The planner is a child process under libfaketime with
// its wall clock shifted and its monotonic clock real (a skewed host); NATS keeps the real time.

let env: PlannerEnv;
const procs = new Set<ChildProcess>();
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', `${nodeYaml('node-1', '192.0.2.1')}---\n${nodeYaml('node-2', '192.0.2.2')}`);
  env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', ['10.0.0.1'])}`);
});
afterEach(async () => {
  for (const p of procs) await stop(p);
  await env.cleanup();
});

function start(args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
  const p = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...extraEnv },
  });
  p.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  procs.add(p);
  p.once('exit', () => procs.delete(p));
  return p;
}
let stderr = '';

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((res) => p.once('exit', () => res()));
  p.kill('SIGKILL');
  await gone;
}

async function status(api: string): Promise<Record<string, any>> {
  const r = await fetch(`${api}/status`).catch(() => undefined);
  return r?.ok ? ((await r.json()) as Record<string, any>) : {};
}

// Needs libfaketime for the shifted clock (test/support/skewed-clock.ts); skipped where it is absent.
it.skipIf(skewedClockMissing !== '')(
  'a planner whose clock is an hour ahead keeps a running bake and stamps with the NATS server time',
  async () => {
    const port = await freePort();
    const api = `http://127.0.0.1:${port}`;
    const planner = (clockEnv: Record<string, string> = {}) =>
      start(
        [
          'planner',
          '--manifests',
          env.manifests,
          '--nats',
          env.nats.url,
          '--db',
          env.db,
          '--http',
          `127.0.0.1:${port}`,
        ],
        clockEnv,
      );
    let p = planner();
    for (const node of ['node-1', 'node-2'])
      start([
        'applier',
        '--node',
        node,
        '--nats',
        env.nats.url,
        '--mode',
        'dry-run',
        '--state-dir',
        path.join(env.dir, `state-${node}`),
        '--heartbeat',
        '500',
        '--healthz-bind-address',
        'off',
      ]);
    await until(async () => (await status(api)).summary?.SYNCED === 2, 15_000, 'both nodes SYNCED');
    const ctl = spawnSync(
      process.execPath,
      [BIN, 'ctl', '--server', api, 'config', 'set', 'tcpTimeout=5m', '--waves', '1,100%', '--bake', '30m'],
      { encoding: 'utf8' },
    );
    expect(ctl.status, ctl.stderr).toBe(0);
    await until(async () => (await status(api)).config?.rollout?.bakeStartedAt, 10_000, 'wave 1 baking');

    // The same planner restarted on a host whose clock is an hour ahead (its monotonic clock real).
    await stop(p);
    p = planner(skewedClockEnv('+1h'));
    const s = await until(async () => {
      const got = await status(api);
      return got.synced === true && got.summary?.SYNCED + got.summary?.APPLYING === 2 ? got : undefined;
    }, 15_000);
    // Heartbeats arrive every 500 ms and each step re-evaluates the rollout: give it a few.
    await new Promise((r) => setTimeout(r, 2000));
    const after = await status(api);
    // Before: the bake's elapsed time came from the wall clock (an hour): wave 2 started at once.
    expect(after.config.rollout.wave, 'still baking wave 1').toBe(0);
    expect(after.rollout.bakeElapsedMs).toBeLessThan(600_000);
    expect(s.clock?.warning, stderr).toMatch(/clock is 3600 s ahead of the NATS server's/);
    expect(Math.abs(Date.parse(s.now) - Date.now())).toBeLessThan(60_000);
    // What it records is stamped with the server's time: a config revision made now.
    const set = spawnSync(process.execPath, [BIN, 'ctl', '--server', api, 'config', 'set', 'udpTimeout=1m'], {
      encoding: 'utf8',
    });
    expect(set.status, set.stderr).toBe(0);
    const ops = spawnSync(process.execPath, [BIN, 'audit', '--db', env.db, 'ops', '--json'], { encoding: 'utf8' });
    const last = (JSON.parse(ops.stdout) as { at: string }[]).at(-1)!;
    expect(Math.abs(Date.parse(last.at) - Date.now())).toBeLessThan(60_000);
  },
  40_000,
);

// probe12 L4: LAST REPORT and HEARTBEAT are the node's own clock; a node 10 min behind looked dead
// to anyone reading them, one ahead reported from the future, and nothing said its clock was off.
// Needs libfaketime for the shifted clock (test/support/skewed-clock.ts); skipped where it is absent.
it.skipIf(skewedClockMissing !== '')(
  'a node whose clock is 10 min behind is flagged under the status table',
  async () => {
    const port = await freePort();
    const api = `http://127.0.0.1:${port}`;
    start([
      'planner',
      '--manifests',
      env.manifests,
      '--nats',
      env.nats.url,
      '--db',
      env.db,
      '--http',
      `127.0.0.1:${port}`,
    ]);
    const applier = (node: string, clockEnv: Record<string, string> = {}) =>
      start(
        [
          'applier',
          '--node',
          node,
          '--nats',
          env.nats.url,
          '--mode',
          'dry-run',
          '--state-dir',
          path.join(env.dir, `state-${node}`),
          '--heartbeat',
          '500',
          '--healthz-bind-address',
          'off',
        ],
        clockEnv,
      );
    applier('node-1');
    applier('node-2', skewedClockEnv('-10m'));
    type Row = { node: string; warnings: string[] };
    const row = (st: Record<string, any>, node: string) => (st.nodes as Row[]).find((n) => n.node === node)!;
    // heartbeats (every 500 ms) carry the node's clock; before, no warning ever came
    const st = await until(
      async () => {
        const got = await status(api);
        return got.summary?.SYNCED === 2 && row(got, 'node-2')?.warnings.length ? got : undefined;
      },
      15_000,
      'a warning on node-2',
    );
    expect(row(st, 'node-2').warnings.join('\n')).toMatch(/node clock 600 s behind the planner's/);
    expect(row(st, 'node-1').warnings).toEqual([]);
    const text = spawnSync(process.execPath, [BIN, 'ctl', '--server', api, 'status'], { encoding: 'utf8' }).stdout;
    expect(text).toMatch(/^WARN node-2: node clock 600 s behind the planner's/m);
  },
  30_000,
);
