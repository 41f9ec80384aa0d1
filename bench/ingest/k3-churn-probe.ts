/**
 * review3 K3 through the informer path: a tenant rewrites one Service's 200 KiB annotation N times
 * (nothing the proxy reads changes) against a running planner (`runPlanner --kubeconfig` at
 * test/support's KubeApiServer, a real nats-server). Prints the bytes of the log (db + WAL) and of
 * the NATS store (the replicated log stream, the versions stream) before and after, as one JSON
 * line. The manifests-source path is the reviewer's own script (/tmp/review-3/k3/run.sh).
 *
 *   npx tsx bench/ingest/k3-churn-probe.ts [--updates 40] [--kib 200]
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_PROXY_CONFIG } from '../../libs/model/index.ts';
import { runPlanner } from '../../services/planner/run-planner.ts';
import { KubeApiServer } from '../../test/support/kube-api-server/index.ts';
import { writeKubeconfig } from '../../test/support/kubeconfig.ts';
import { startNatsServer } from '../../test/support/nats-server.ts';

const { values } = parseArgs({ options: { updates: { type: 'string' }, kib: { type: 'string' } } });
const updates = Number(values.updates ?? 40);
const kib = Number(values.kib ?? 200);

function du(p: string): number {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((n, f) => n + du(path.join(p, f)), 0);
}

const dir = mkdtempSync(path.join(tmpdir(), 'sb-k3-'));
const kube = await KubeApiServer.start();
const kc = await writeKubeconfig({ server: kube.url });
const nats = await startNatsServer({ jetstream: true });
const db = path.join(dir, 'log.db');
const service = (i: number) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: {
    name: 't',
    namespace: 'tenant',
    annotations: { note: `${i}-${'a'.repeat(kib * 1024)}` },
    managedFields: [{ manager: 'kubectl-annotate', operation: 'Update', fieldsV1: { 'f:metadata': {} } }],
  },
  spec: { type: 'ClusterIP', clusterIP: '10.100.9.9', clusterIPs: ['10.100.9.9'], ports: [{ port: 80 }] },
});
kube.create('Node', {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'n1' },
  status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] },
});
kube.create('Service', service(0));
const planner = await runPlanner({
  kubeconfig: kc.path,
  nats: nats.url,
  db,
  http: '127.0.0.1:0',
  config: DEFAULT_PROXY_CONFIG,
  say: () => {},
});
const until = async (what: string, ok: () => boolean) => {
  for (const t0 = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 20)))
    if (Date.now() - t0 > 60_000) throw new Error(`timed out waiting for ${what}`);
};
const p = () => planner.planner;
const log = () =>
  (p() as unknown as { options: { log: { lastSeq(): number; events(): { object: unknown }[] } } }).options.log;
const events = () => log().lastSeq();
const measure = () => ({
  events: events(),
  // the events' object column: what the log keeps per event (the WAL's size also counts whole pages per commit)
  loggedObjectBytes: log()
    .events()
    .reduce((n, e) => n + JSON.stringify(e.object).length, 0),
  versions: p().versions().length,
  dbAndWalBytes: du(db) + du(`${db}-wal`),
  natsStoreBytes: du(nats.storeDir),
});
try {
  await until('version 1', () => p().data.latest()?.version === 1);
  await new Promise((r) => setTimeout(r, 1000)); // the replicated log's flush, the checkpoint
  const before = measure();
  for (let i = 1; i <= updates; i++) {
    const seq = events();
    kube.update('Service', service(i));
    await until(`update ${i} logged`, () => events() > seq);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const after = measure();
  console.log(JSON.stringify({ updates, kib, before, after }));
} finally {
  await planner.stop();
  await nats.stop();
  await kc.cleanup();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0); // the NATS client's idle-heartbeat timers outlive the stopped planner
