// Rotating the planner's signing key without a window in which nodes drop every target
// (docs/distribution.md, "Rotating the signing key"): nodes first trust a bundle of the old and
// the new key, then the planner restarts with the new key. A node given only the old key drops
// what the new key signs and keeps running what it applied.
import { generateKeyPairSync } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ApplierSession, type SessionEvent } from '../../../libs/applier/index.ts';
import { signerFromKey, verifierFromPem, type Verifier } from '../../../libs/bus/index.ts';
import { DryRunDataplane } from '../../../libs/dataplane/index.ts';
import { nodeYaml, plannerEnv, startBarePlanner, svcYaml, until, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  for (const n of ['n1', 'n2', 'n3']) env.write(`${n}.yaml`, nodeYaml(n, `192.0.2.${n.slice(1)}`));
  env.write('a.yaml', svcYaml('a', '10.96.0.1'));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => {});
  await env.cleanup();
});

async function startNode(node: string, verifier: Verifier) {
  const nc = await connect({ servers: env.nats.url });
  const events: SessionEvent[] = [];
  const session = await ApplierSession.start({
    nc,
    node,
    dataplane: new DryRunDataplane(),
    heartbeatMs: 0,
    retryMs: 200,
    verifier,
    onEvent: (e) => events.push(e),
  });
  stops.push(async () => {
    await session.stop();
    await nc.close();
  });
  return { session, events };
}

it('nodes trusting the old and the new key follow a planner restarted with the new key; one trusting only the old key keeps its version and says why', async () => {
  const oldKey = signerFromKey(generateKeyPairSync('ed25519').privateKey);
  const newKey = signerFromKey(generateKeyPairSync('ed25519').privateKey);
  const bundle = verifierFromPem(oldKey.publicKeyPem + newKey.publicKeyPem);

  const first = await startBarePlanner(env, 'p.db', { signer: oldKey });
  stops.push(first.stop);
  const v1 = first.planner.data.latest()!.version;
  const n1 = await startNode('n1', bundle);
  const n2 = await startNode('n2', verifierFromPem(oldKey.publicKeyPem));
  await until(
    () => n1.session.status().applied?.version === v1 && n2.session.status().applied?.version === v1,
    10_000,
    'v1 on n1 and n2',
  );
  await first.stop();

  const second = await startBarePlanner(env, 'p.db', { signer: newKey });
  stops.push(second.stop);
  env.write('b.yaml', svcYaml('b', '10.96.0.2'));
  const v2 = await until(
    () => {
      const v = second.planner.data.latest()!.version;
      return v > v1 ? v : undefined;
    },
    10_000,
    'a version after the rotation',
  );
  await until(() => n1.session.status().applied?.version === v2, 10_000, 'n1 follows the new key');
  expect(n1.events.some((e) => e.type === 'rejected')).toBe(false);
  // a node that starts after the rotation loads from whatever mix of old- and new-key messages the stream holds
  const n3 = await startNode('n3', bundle);
  await until(() => n3.session.status().applied?.version === v2, 10_000, 'n3 starts on the new key');

  await until(
    () => n2.events.some((e) => e.type === 'rejected' && /signature/.test(e.reason)),
    10_000,
    'n2 drops what the new key signed',
  );
  expect(n2.session.status().applied?.version).toBe(v1);
});
