import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { until } from './planner-support.ts';

// End to end (kube informer against the fake API server, real nats-server, real SQLite file): a
// planner stopped while its appends fail must not leave the informer's resume point past the
// events it could not log (review2 R6). Before, close() wrote the pending save: the restart
// WATCHed from the DELETED's resourceVersion and published the deleted Service on and on.

let kube: KubeApiServer;
let kc: WrittenKubeconfig;
let nats: NatsServerHandle;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sb-planner-stop-resume-'));
  kube = await KubeApiServer.start();
  kc = await writeKubeconfig({ server: kube.url });
  nats = await startNatsServer({ jetstream: true });
});
afterAll(async () => {
  await nats?.stop();
  await kc?.cleanup();
  await kube?.stop();
  rmSync(dir, { recursive: true, force: true });
});

// `externalIPs` make a large row: the log keeps only what the readers read (not, e.g., annotations).
const svc = (name: string, ip: string, externalIPs: string[] = []) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: {
    type: 'ClusterIP',
    clusterIP: ip,
    clusterIPs: [ip],
    externalIPs,
    ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
  },
});
const start = () =>
  runPlanner({
    kubeconfig: kc.path,
    nats: nats.url,
    db: path.join(dir, 'log.db'),
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    say: () => {},
  });
const services = (p: RunningPlanner) => [...p.planner.data.publishedData().services()].map((s) => s.key);

it('a stop while the disk is full keeps the resume point of the last logged event: the restart sees the deletion', async () => {
  kube.create('Node', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'n1' },
    status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] },
  });
  kube.create(
    'Service',
    svc(
      'a',
      '10.96.0.1',
      Array.from({ length: 1500 }, (_, i) => `198.18.${i >> 8}.${i & 255}`),
    ),
  ); // its DELETED row needs new pages
  kube.create('Service', svc('b', '10.96.0.2'));
  let p = await start();
  let deletedRv = '';
  try {
    await until(() => p.planner.data.latest()?.version === 1, 15_000, 'version 1');
    expect(services(p)).toEqual(['default/a', 'default/b']);
    // The planner's own connection: max_page_count is per connection, the disk is full from here on.
    const db = databaseOf((p.planner as unknown as { options: { log: EventLog } }).options.log);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    deletedRv = String(kube.delete('Service', { namespace: 'default', name: 'a' }).metadata.resourceVersion);
    await until(() => /disk full/.test(p.planner.lastError ?? ''), 15_000, 'the append of the DELETED to fail');
  } finally {
    await p.stop();
  }
  const file = await EventLog.open({ file: path.join(dir, 'log.db'), migrate: false });
  const resumed = file.resumeStore().load('Service');
  file.close();
  expect(Number(resumed)).toBeLessThan(Number(deletedRv)); // before: equal
  // Space is back (a new connection): the restarted informer watches from the logged rv and sees the delete.
  p = await start();
  try {
    await until(() => !services(p).includes('default/a'), 15_000, 'the restarted planner to drop default/a');
    expect(services(p)).toEqual(['default/b']);
  } finally {
    await p.stop();
  }
}, 60_000);
