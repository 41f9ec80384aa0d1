// probe15 U7 end to end: under this planner, an applier of a release that does not know a Node's
// `beingRemoved` and an endpoint's `hintNodes` (as 0f3dc3b's appliers did) applied and ACKed targets
// carrying them, and nothing said so. Now its heartbeat names them, the planner's /status carries
// them on the node's row, and `ctl status` prints a WARNING naming the node and the fields; the
// status word stays what the hashes say. The older applier is this release's applier told to know
// fewer fields (ApplierServiceOptions.knownFields: the entry schemas without those two), which is
// exactly how an older release reads a newer target. Real nats-server, planner and dry-run appliers.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { z } from 'zod';
import {
  contentShapes,
  DEFAULT_PROXY_CONFIG,
  EndpointEntrySchema,
  NodeFactsSchema,
  ServiceEntrySchema,
  ServicePortEntrySchema,
} from '../../../libs/model/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { BIN } from '../../faults/fleet.ts';
import { nodeYaml, plannerEnv, plannerOptions, svcYaml, until, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
let planner: RunningPlanner | undefined;
const appliers: ApplierService[] = [];

/** What an applier of the release before `beingRemoved` and `hintNodes` knows of entries. */
const olderRelease = contentShapes({
  services: ServiceEntrySchema.extend({
    ports: z.array(
      ServicePortEntrySchema.extend({ endpoints: z.array(EndpointEntrySchema.omit({ hintNodes: true })) }),
    ),
  }),
  nodes: NodeFactsSchema.omit({ beingRemoved: true }),
});

beforeEach(async () => {
  env = await plannerEnv();
  // node-1 is on its way out (the autoscaler's taint) and an endpoint carries node hints
  env.write(
    'nodes.yaml',
    `${nodeYaml('node-1', '192.0.2.1')}spec: {taints: [{key: ToBeDeletedByClusterAutoscaler, effect: NoSchedule}]}\n---\n${nodeYaml('node-2', '192.0.2.2')}`,
  );
  env.write(
    'a.yaml',
    `${svcYaml('a', '10.96.0.1')}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: a-abc, namespace: default, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}, nodeName: node-2, hints: {forNodes: [{name: node-2}]}}]
`,
  );
  planner = await runPlanner({
    ...plannerOptions(env),
    say: () => {},
  });
  await planner.planner.synced;
});
afterEach(async () => {
  for (const a of appliers.splice(0)) await a.stop();
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

it('an applier that does not know target fields applies and ACKs them; ctl status warns, naming node and fields', async () => {
  for (const [node, knownFields] of [
    ['node-1', olderRelease],
    ['node-2', undefined],
  ] as const)
    appliers.push(
      await startApplierService({
        node,
        nats: env.nats.url,
        mode: 'dry-run',
        heartbeatMs: 200,
        logger: pino({ level: 'silent' }),
        knownFields,
      }),
    );
  type Row = { node: string; status: string; unknownTargetFields: unknown };
  const status = async () => (await (await fetch(`${planner!.url}/status`)).json()) as { nodes: Row[] };
  const s = await until(
    async () => {
      const got = await status();
      const synced = got.nodes.filter((n) => n.status === 'SYNCED').length === 2;
      return synced && got.nodes.find((n) => n.node === 'node-1')?.unknownTargetFields ? got : undefined;
    },
    15_000,
    'both nodes SYNCED, node-1 naming the fields it does not know',
  );
  const fields = { paths: ['services[].ports[].endpoints[].hintNodes', 'nodes[].beingRemoved'], otherKeys: 0 };
  expect(s.nodes.find((n) => n.node === 'node-1')?.unknownTargetFields).toEqual(fields);
  // an applier that knows every field of its target says nothing
  expect(s.nodes.find((n) => n.node === 'node-2')?.unknownTargetFields).toBeNull();

  // not spawnSync: the planner answers from this process
  const ctl = await promisify(execFile)(process.execPath, [BIN, 'ctl', '--server', planner!.url, 'status'], {
    encoding: 'utf8',
  });
  const warnings = ctl.stdout.split('\n').filter((l) => l.startsWith('WARNING'));
  expect(warnings).toEqual([
    "WARNING: node-1's applier does not know target fields services[].ports[].endpoints[].hintNodes, nodes[].beingRemoved (it applies its targets without them): an applier of an older release than the planner; upgrade it",
  ]);
  // the word stays what the hashes say
  expect(ctl.stdout).toMatch(/^node-1\s+SYNCED\s/m);
  expect(ctl.stdout).toMatch(/^node-2\s+SYNCED\s/m);
}, 30_000);
