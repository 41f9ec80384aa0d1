import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from '../planner/planner-support.ts';
import { sbIn } from './cli-support.ts';

// Rollout gates (issue 16) end to end: a real nats-server, a real planner on a real SQLite log,
// real dry-run appliers (the whole protocol over NATS, the kernel untouched), ctl as a process.
let env: PlannerEnv;
let planner: RunningPlanner | undefined;
let appliers: ApplierService[] = [];

beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  for (const a of appliers) await a.stop();
  appliers = [];
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

const start = async () => {
  planner = await runPlanner({
    ...plannerOptions(env),
    say: () => {},
  });
  await planner.planner.synced;
  return planner;
};
const startAppliers = async (...nodes: string[]) => {
  for (const node of nodes) {
    appliers.push(
      await startApplierService({
        node,
        nats: env.nats.url,
        mode: 'dry-run',
        heartbeatMs: 200,
        logger: pino({ level: 'silent' }),
      }),
    );
  }
};
const ctl = (...args: string[]) => sbIn(['ctl', '--server', planner!.url, ...args]);
const gateOps = () =>
  planner!.planner['options'].log
    .operations()
    .filter((o) => o.kind === 'rollout' && typeof o.params.gate === 'string')
    .map((o) => ({ gate: o.params.gate as string, reason: o.reason, actor: o.actor }));
const status = async () => JSON.parse((await ctl('status', '-o', 'json')).stdout);
const appliedRevision = async (node: string) =>
  (await status()).nodes.find((n: { node: string }) => n.node === node)?.appliedConfigRevision;

describe('rollout policy flags are usage errors (exit 2, one line naming the flag)', () => {
  it('refuses bad --bake, --wave-timeout, --max-failures and --pause-before, and two verbs at once', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['rollout', '--config-revision', '2', '--bake', 'soon'],
        /^error: option '--bake <duration>' argument 'soon' is invalid\. expected a duration/,
      ],
      [
        ['rollout', '--config-revision', '2', '--wave-timeout', '0'],
        /^error: option '--wave-timeout <duration>' argument '0' is invalid/,
      ],
      [
        ['mode', 'nftables', '--max-failures', '-1'],
        /^error: option '--max-failures <n\|p%>' argument '-1' is invalid\. max-failures: "-1" must be/,
      ],
      [
        ['config', 'set', 'scheduler=wrr', '--max-failures', '150%'],
        /^error: option '--max-failures <n\|p%>' argument '150%' is invalid/,
      ],
      [
        ['rollout', '--config-revision', '2', '--pause-before', '1'],
        /^error: option '--pause-before <wave>' argument '1' is invalid\. pause-before: "1" must be a wave number of 2 or more/,
      ],
      [
        ['rollout', '--promote', '--resume'],
        /^switchboard: rollout: give one of --config-revision R, --pause, --resume or --promote/,
      ],
      [['rollout', 'stats'], /^error: command-argument value 'stats' is invalid/],
    ];
    for (const [args, msg] of cases) {
      const r = await sbIn(['ctl', '--server', 'http://127.0.0.1:1', ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('rollout gates with a real planner, nats-server and dry-run appliers', () => {
  it('a silent node trips the wave timeout: the rollout halts and the node that took the revision goes back', async () => {
    await start();
    await startAppliers('node-1'); // node-2 is in the fleet (manifests) but never answers
    const r = await ctl(
      'config',
      'set',
      'scheduler=wrr',
      '--waves',
      '100%',
      '--wave-timeout',
      '2s',
      '--wait',
      '--timeout',
      '60s',
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /rollout of revision 2 halted at wave 1\/1, .*: node-2 failed: no ACK of revision 2 within the wave timeout of 2s\n$/,
    );
    const st = await status();
    expect(st.rollout).toMatchObject({
      status: 'halted',
      wave: 1,
      failed: [{ node: 'node-2' }],
      haltedBy: { node: 'node-2' },
    });
    expect(st.config.defaultRevision).toBe(1);
    // node-1 had ACKed revision 2; the halt sends it back to 1 by itself.
    await until(async () => (await appliedRevision('node-1')) === 1, 15_000, 'node-1 back on revision 1');
    const gates = gateOps();
    expect(gates.at(-1)).toMatchObject({ gate: 'timeout', actor: 'planner' });
    expect(gates.at(-1)!.reason).toMatch(
      /^rollout halted: 1 failed node\(s\), 0 tolerated by --max-failures 0: node-2 \(no ACK/,
    );
  });

  it('a pause gate holds the next wave until promote, then the rollout completes', async () => {
    await start();
    await startAppliers('node-1', 'node-2');
    await until(async () => (await appliedRevision('node-2')) === 1, 15_000, 'node-2 on revision 1');
    expect((await ctl('config', 'set', 'scheduler=wrr')).code).toBe(0);
    const r = await ctl('rollout', '--config-revision', '2', '--waves', '1,100%', '--pause-before', '2');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    await until(() => planner!.planner.config.state.rollout?.gate === 2, 15_000, 'rollout waiting at the gate');
    const shown = await ctl('rollout', 'status');
    expect(shown.stdout).toMatch(
      /^rollout of config revision 2 \(from 1\): paused, wave 1\/2: 1\/2 nodes \(node-1\)\n/,
    );
    expect(shown.stdout).toMatch(/waiting before wave 2: continue with `ctl rollout --promote`/);
    expect((await status()).rollout).toMatchObject({ status: 'paused', wave: 1, waitingForPromote: 2 });
    // Held: node-2 stays on revision 1 while the gate is closed (node-1 already runs 2).
    expect(await appliedRevision('node-1')).toBe(2);
    expect(await appliedRevision('node-2')).toBe(1);
    expect(planner!.planner.config.overrides().has('node-2')).toBe(false);
    const promoted = await sbIn([
      'ctl',
      '--server',
      planner!.url,
      '--actor',
      'alice',
      'rollout',
      '--promote',
      '--reason',
      'canary looks fine',
    ]);
    expect(promoted).toMatchObject({
      code: 0,
      stdout: 'rollout of config revision 2 promoted at wave 2/2: 2/2 nodes (node-1, node-2).\n',
    });
    await until(() => planner!.planner.config.state.defaultRevision === 2, 15_000, 'revision 2 the default');
    expect((await status()).rollout.status).toBe('completed');
    expect(gateOps().map((g) => g.gate)).toEqual(['gate', 'promote', 'complete']);
    expect(gateOps()[1]).toMatchObject({ reason: 'canary looks fine' });
  });

  it('rollout --pause stops a running rollout where it is (recorded with its reason); --resume goes on', async () => {
    await start();
    expect((await ctl('config', 'set', 'scheduler=wrr')).code).toBe(0);
    // No applier runs yet: no node may be the canary, so the rollout is refused in one line (W1;
    // before, node-1 was the canary by name and the rollout waited on it for its wave timeout).
    expect(await ctl('rollout', '--config-revision', '2', '--waves', '1,100%')).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'switchboard: planner: no canary: the first wave takes 1 node(s) whose applier is live and in sync, and none of the 2 fleet nodes is: node-1 UNKNOWN (never heard from); node-2 UNKNOWN (never heard from)\n',
    });
    expect(planner!.planner.config.state.rollout).toBeUndefined();
    await startAppliers('node-1'); // the canary; a long bake keeps the rollout running until paused
    await until(async () => (await appliedRevision('node-1')) === 1, 15_000, 'node-1 on revision 1');
    expect((await ctl('rollout', '--config-revision', '2', '--waves', '1,100%', '--bake', '10m')).code).toBe(0);
    const paused = await ctl('--actor', 'alice', 'rollout', '--pause', '--reason', 'pager went off');
    expect(paused).toEqual({
      code: 0,
      stdout: 'rollout of config revision 2 paused at wave 1/2: 1/2 nodes (node-1).\n',
      stderr: '',
    });
    expect(planner!.planner.config.state.rollout?.status).toBe('paused');
    const op = planner!.planner['options'].log.operations().at(-1)!;
    expect(op).toMatchObject({ kind: 'rollout', actor: 'alice', reason: 'pager went off' });
    expect(op.params).toMatchObject({ pause: true });
    // nothing running to pause: the planner's refusal, one line, exit 1
    expect(await ctl('rollout', '--pause')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'switchboard: planner: no running rollout to pause\n',
    });
    expect((await ctl('rollout', '--resume')).stdout).toBe(
      'rollout of config revision 2 resumed at wave 1/2: 1/2 nodes (node-1).\n',
    );
    expect(planner!.planner.config.state.rollout?.status).toBe('running');
  });

  it("a planner restarted mid-bake resumes the bake clock from the log (and the wave's ACKs with it)", async () => {
    await start();
    await startAppliers('node-1', 'node-2');
    await until(async () => (await appliedRevision('node-2')) === 1, 15_000, 'node-2 on revision 1');
    expect((await ctl('config', 'set', 'scheduler=wrr')).code).toBe(0);
    expect((await ctl('rollout', '--config-revision', '2', '--waves', '1,100%', '--bake', '4s')).code).toBe(0);
    const bakeStartedAt = await until(
      () => planner!.planner.config.state.rollout?.bakeStartedAt,
      15_000,
      'wave 1 baking',
    );
    expect(planner!.planner.config.state.rollout!.wave).toBe(0);
    await planner!.stop();
    planner = undefined;
    await start();
    // Restored from the log, not restarted: the same bake start, and the wave's ACKs re-read
    // (node-1 does not ACK again: its target did not move).
    expect(planner!.planner.config.state.rollout).toMatchObject({ status: 'running', wave: 0, bakeStartedAt });
    await until(() => planner!.planner.config.state.rollout?.wave === 1, 20_000, 'wave 2 after the bake');
    await until(() => planner!.planner.config.state.defaultRevision === 2, 30_000, 'revision 2 the default');
    const ops = planner!.planner['options'].log
      .operations()
      .filter((o) => o.kind === 'rollout' && typeof o.params.gate === 'string');
    expect(ops.map((o) => o.params.gate)).toEqual(['bake', 'advance', 'bake', 'complete']);
    const advance = ops[1]!;
    expect(advance.reason).toBe('wave 2 of 2 starts: wave 1 ACKed revision 2 and baked 4s');
    expect(Date.parse(advance.at) - Date.parse(bakeStartedAt)).toBeGreaterThanOrEqual(4000);
  });
});
