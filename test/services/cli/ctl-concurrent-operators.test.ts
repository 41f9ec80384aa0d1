import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, until, type PlannerEnv } from '../planner/planner-support.ts';
import { sbIn } from './cli-support.ts';

// probe11 K1, K2, K7, K9: two operators (one token here) acting on one planner, through ctl and the
// API as the console calls it; a real planner, nats-server and dry-run appliers.
let env: PlannerEnv;
let planner: RunningPlanner | undefined;
const appliers: ApplierService[] = [];

beforeAll(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  const tokenFile = path.join(env.dir, 'tokens');
  writeFileSync(tokenFile, 'op-tok ci operator\n');
  planner = await runPlanner({
    manifests: env.manifests,
    nats: env.nats.url,
    db: env.db,
    http: '127.0.0.1:0',
    tokenFile,
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    say: () => {},
  });
  await planner.planner.synced;
  for (const node of ['node-1', 'node-2'])
    appliers.push(
      await startApplierService({
        node,
        nats: env.nats.url,
        mode: 'dry-run',
        heartbeatMs: 200,
        logger: pino({ level: 'silent' }),
      }),
    );
});
afterAll(async () => {
  for (const a of appliers) await a.stop();
  await planner?.stop();
  await env?.cleanup();
});

const ctl = (...args: string[]) => sbIn(['ctl', '--server', planner!.url, '--token', 'op-tok', ...args]);
const state = () => planner!.planner.config.state;
const post = (p: string, body: object) =>
  fetch(`${planner!.url}${p}`, {
    method: 'POST',
    headers: { authorization: 'Bearer op-tok', 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

it('K1: the rollout of a revision made from an earlier default is refused naming what it would revert', async () => {
  await ctl('wait', '--for=synced', '--timeout', '30s');
  const alice = await ctl('config', 'set', 'scheduler=wrr', '--waves', '1,100%', '--pause-before', '2');
  expect(alice.code).toBe(0);
  const bob = await ctl('config', 'set', 'tcpTimeout=15m');
  expect(bob.stdout).toBe(
    'config revision 3: tcpTimeout 0 → 900. It is made over the default, revision 1, not over revision 2 (rolling out now). Not rolled out yet: ctl rollout --config-revision 3 --waves 1,10%,50%,100%\n',
  );
  await until(() => state().rollout?.gate === 2, 20_000, 'the gate before wave 2');
  expect((await ctl('rollout', '--promote', '--wait', '--timeout', '30s')).code).toBe(0);
  expect(state().defaultRevision).toBe(2);

  const stale = await ctl('rollout', '--config-revision', '3', '--waves', '100%');
  expect(stale).toMatchObject({
    code: 1,
    stdout: '',
    stderr:
      'switchboard: planner: config revision 3 was made from revision 1, and revision 2 has become the cluster default since: rolling it out would also change scheduler wrr → rr; make the change again over the default (ctl config set tcpTimeout=900) or roll it out with --force\n',
  });
  expect(state()).toMatchObject({ defaultRevision: 2, rollout: { configRevision: 2, status: 'completed' } });

  expect((await ctl('config', 'set', 'tcpTimeout=900')).code).toBe(0); // revision 4: wrr and 900
  const again = await ctl('rollout', '--config-revision', '4', '--waves', '100%', '--wait', '--timeout', '30s');
  expect(again).toMatchObject({
    code: 0,
    stdout:
      'rollout of config revision 4 (tcpTimeout 0 → 900 against the default, revision 2) started at wave 1/1: 2/2 nodes (node-1, node-2).\n',
  });
  expect(planner!.planner.config.defaultConfig()).toMatchObject({ scheduler: 'wrr', tcpTimeout: 900 });
});

it('K2, K7: a rollback names where it went from, and one repeated or for a stopped canary changes nothing', async () => {
  expect(state().defaultRevision).toBe(4);
  expect((await ctl('rollback', '--reason', 'alice undo')).stdout).toBe(
    'config rolled back: the cluster default is config revision 2 on every node (from revision 4; rollout of revision 4 rolled back).\n',
  );
  // bob's retry of the same rollback (what he saw: default 4) is refused; before, it went on to 1
  const retry = await ctl('rollback', '--from-revision', '4', '--reason', 'bob undo');
  expect(retry.code).toBe(1);
  expect(retry.stderr).toMatch(
    /^switchboard: planner: the cluster default is config revision 2, not 4 as this rollback expected \(it moved meanwhile\): nothing rolled back; see ctl status; last config operation: rollback by ci at \S+ \("alice undo"\)\n$/,
  );
  expect(state().defaultRevision).toBe(2);

  // the console's Roll back clicked twice on a canary: one stops it, the other is refused (the
  // canary is chosen among in-sync nodes: wait for the rollback's version to be acked, which took
  // longer than the next request under CI load once)
  expect((await ctl('wait', '--for=synced', '--timeout', '30s')).code).toBe(0);
  expect((await ctl('config', 'set', 'udpTimeout=88', '--waves', '1,100%', '--pause-before', '2')).code).toBe(0);
  expect(state().rollout).toMatchObject({ configRevision: 5 });
  const body = { rollout: 5, fromRevision: 2, reason: 'rollback from the console' };
  const answers = await Promise.all([post('/rollback', body), post('/rollback', body)]);
  expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
  const refused = (await answers.find((a) => a.status === 409)!.json()) as { error: string };
  expect(refused.error).toMatch(/^the rollout of config revision 5 is no longer in flight \(it is rolled-back\)/);
  expect(state()).toMatchObject({ defaultRevision: 2, rollout: { configRevision: 5, status: 'rolled-back' } });

  // K7: revision 3 was never the default: no instant fleet-wide rollout of it
  const never = await ctl('rollback', '--config-revision', '3');
  expect(never).toMatchObject({
    code: 1,
    stderr:
      'switchboard: planner: config revision 3 was never the cluster default: a rollback to it would roll it out to every node at once; roll it out in waves (ctl rollout --config-revision 3) or pass --force\n',
  });
  expect(state().defaultRevision).toBe(2);
});

it('K2: a pin names the pin it replaced; with --expect-pin it is refused once another pin replaced the one seen', async () => {
  env.write('b.yaml', svcYaml('b', '10.96.0.2') + '---\n' + sliceYaml('b', ['10.0.0.2']));
  await until(() => (planner!.planner.versions().at(-1)?.version ?? 0) >= 2, 20_000, 'version 2');
  expect((await ctl('pin', '--version', '1', '--reason', 'alice pin')).code).toBe(0);
  const bob = await ctl('pin', '--version', '2', '--reason', 'bob pin');
  expect(bob.stdout).toMatch(
    /^pinned: version \d+ publishes version 2's content \(hash [0-9a-f]{12}\); new data is held until `ctl unpin`; it replaced the pin to version 1 by ci at \S+\.\n$/,
  );
  const alice = await ctl('pin', '--version', '1', '--expect-pin', '1');
  expect(alice).toMatchObject({ code: 1, stdout: '' });
  expect(alice.stderr).toMatch(
    /^switchboard: planner: the data is pinned to version 2 \(pin by ci at \S+\), not a pin to version 1 as this pin expected: nothing done; see ctl status\n$/,
  );
  expect(planner!.planner.data.pin?.version).toBe(2);
  expect((await ctl('unpin', '--expect-pin', '2')).code).toBe(0);
});

it('K9: a --server that answers something other than HTTP (the NATS port) is named so', async () => {
  const nats = new URL(env.nats.url.replace(/^nats:/, 'http:'));
  const r = await sbIn(['ctl', '--server', `http://${nats.host}`, 'status']);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/answered something that is not HTTP \(is --server the NATS port\?\)/);
});
