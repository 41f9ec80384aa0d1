// The planner end to end (manifests, its data axis, the versions stream, the targets bucket) with a
// real applier session: one endpoint of a 300-endpoint service changed reaches the node as a patch
// on the default target's notice, which the node rebuilds and applies with nothing fetched; the
// versions stream still holds the whole delta.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { generateKeyPairSync } from 'node:crypto';
import { ApplierSession, type SessionEvent } from '../../../libs/applier/index.ts';
import { signerFromKey, VersionReader, verifierFromPem } from '../../../libs/bus/index.ts';
import { DryRunDataplane } from '../../../libs/dataplane/index.ts';
import { ApplierMetrics } from '../../../services/applier/applier-metrics.ts';
import { nodeYaml, plannerEnv, startBarePlanner, svcYaml, until, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

/** Service `big`'s slice: 300 ready endpoints, endpoint `down` (if any) not ready. */
function bigSlice(down = -1): string {
  const eps = Array.from(
    { length: 300 },
    (_, i) => `{addresses: [10.1.${i >> 8}.${i & 255}], conditions: {ready: ${i !== down}}, nodeName: node-1}`,
  );
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: big-abc, namespace: default, labels: {kubernetes.io/service-name: big}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints: [${eps.join(', ')}]
`;
}

it('one endpoint of 300 changes: the node gets a patch on the notice, applies it with nothing fetched, and runs the stream’s content', async () => {
  const signer = signerFromKey(generateKeyPairSync('ed25519').privateKey);
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('big.yaml', `${svcYaml('big', '10.96.0.1')}---\n${bigSlice()}`);
  const p = await startBarePlanner(env, 'a.db', { signer });
  stops.push(p.stop);
  const nc = await connect({ servers: env.nats.url });
  const events: SessionEvent[] = [];
  const metrics = new ApplierMetrics();
  const session = await ApplierSession.start({
    nc,
    node: 'node-1',
    dataplane: new DryRunDataplane(),
    heartbeatMs: 200,
    verifier: verifierFromPem(signer.publicKeyPem),
    onEvent: (e) => {
      events.push(e);
      metrics.observe(e);
    },
  });
  stops.push(async () => {
    await session.stop();
    await nc.close();
  });
  const v1 = p.bus.lastPublishedVersion();
  await until(() => session.status().applied?.version === v1, 10_000, 'node-1 applied the first version');

  const notices: { patch?: unknown; delta?: unknown; target: { version?: number } }[] = [];
  const sub = env.nc.subscribe('sb.target.default', { callback: (_e, m) => void notices.push(m.json()) });
  stops.push(async () => sub.unsubscribe());
  await env.nc.flush(); // the server has the subscription before the change is published
  env.write('big.yaml', `${svcYaml('big', '10.96.0.1')}---\n${bigSlice(7)}`);
  const v2 = await until(() => (p.bus.lastPublishedVersion() > v1 ? p.bus.lastPublishedVersion() : 0), 10_000, 'v2');
  const hash = p.log.version(v2)!.hash;
  await until(() => session.status().applied?.version === v2, 10_000, 'node-1 applied the change');
  expect(session.status().applied?.dataHash).toBe(hash);

  const ack = events.find((e) => e.type === 'ack' && e.ack.version === v2);
  expect(ack?.type === 'ack' && { path: ack.path, bytes: ack.bytes, patched: ack.patched }).toEqual({
    path: 'deltas',
    bytes: 0,
    patched: 1,
  });
  expect(events.filter((e) => e.type === 'rejected')).toEqual([]);
  const patched = await metrics.registry.getSingleMetric('switchboard_applier_patched_services_total')!.get();
  expect(patched.values.map((v) => v.value)).toEqual([1]);
  // the node's own connection may get the notice before this test's connection hands it over
  const notice = await until(() => notices.find((n) => n.target.version === v2), 10_000, 'the notice of v2 seen');
  expect(notice.delta).toBeUndefined();
  expect(JSON.stringify(notice.patch).length).toBeLessThan(3000);

  // the stream holds the whole delta, the service's full entry, for replay and nodes behind
  const stored = await new VersionReader(env.nc, { verifier: verifierFromPem(signer.publicKeyPem) }).delta(v2);
  expect(stored.ok && stored.value.hash).toBe(hash);
  expect(stored.ok && stored.value.delta.upsertServices.map((e) => e.ports[0]!.endpoints.length)).toEqual([300]);
});
