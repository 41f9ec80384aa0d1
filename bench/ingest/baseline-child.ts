/**
 * Baseline child for bench/ingest, one fresh process per measurement so its memory is its own.
 *   mode 'fetch':    raw fetch of the three collections (limit=500 pages, like the informer) and
 *                    JSON.parse of every page: the cost of just reading the data.
 *   mode 'informer': a bare ClusterInformer (same client code as the planner) with a no-op sink,
 *                    start → synced: reading the data plus the informer's own work, no planner.
 * argv[2]: JSON { mode, server, kubeconfig }. Sends one {op:'done', ...} (or {op:'error'}) and exits.
 */
import { ClusterInformer, loadKubeConfig } from '../../libs/kube/index.ts';

interface Args {
  mode: 'fetch' | 'informer';
  server: string;
  kubeconfig: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
// Loaded before the clock starts, as the planner's child does: libs/kube imports the client
// lazily (1d0e947), and both windows measure work after module load, not module load (which
// would add the same ~1–2 s of CPU to both sides and flatter the ratio).
if (args.mode === 'informer') await import('@kubernetes/client-node');
const now = (): number => performance.timeOrigin + performance.now();
const PATHS = ['/api/v1/services', '/apis/discovery.k8s.io/v1/endpointslices', '/api/v1/nodes'];

function memory(): Record<string, number> {
  const before = process.memoryUsage();
  global.gc?.();
  const after = process.memoryUsage();
  return {
    rssMb: before.rss / 1048576,
    heapUsedMb: before.heapUsed / 1048576,
    rssAfterGcMb: after.rss / 1048576,
    heapUsedAfterGcMb: after.heapUsed / 1048576,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
  };
}

async function fetchAll(): Promise<{ items: unknown[]; bytes: number; pages: number }> {
  const items: unknown[] = [];
  let bytes = 0;
  let pages = 0;
  for (const path of PATHS) {
    let cont: string | undefined;
    for (let guard = 0; guard < 100_000; guard++) {
      const url = new URL(path, args.server);
      url.searchParams.set('limit', '500');
      if (cont) url.searchParams.set('continue', cont);
      const res = await fetch(url);
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
      const text = await res.text();
      bytes += Buffer.byteLength(text);
      pages += 1;
      const page = JSON.parse(text) as { items: unknown[]; metadata: { continue?: string } };
      for (const it of page.items) items.push(it);
      cont = page.metadata.continue || undefined;
      if (!cont) break;
    }
  }
  return { items, bytes, pages };
}

/** Sends one message and resolves once it is handed to the channel (so exiting loses nothing). */
function reply(m: unknown): Promise<void> {
  return new Promise((resolve) => {
    if (process.send) process.send(m, () => resolve());
    else resolve();
  });
}

async function main(): Promise<void> {
  const cpu0 = process.cpuUsage();
  const tStart = now();
  if (args.mode === 'fetch') {
    const r = await fetchAll();
    const tDone = now();
    const cpu = process.cpuUsage(cpu0);
    await reply({
      op: 'done',
      tStart,
      tDone,
      objects: r.items.length,
      bytes: r.bytes,
      pages: r.pages,
      cpuMs: (cpu.user + cpu.system) / 1000,
      ...memory(),
    });
    return;
  }
  let events = 0;
  const informer = new ClusterInformer({
    kubeConfig: await loadKubeConfig({ kubeconfig: args.kubeconfig }),
    sink: () => {
      events += 1;
    },
  });
  informer.start();
  try {
    await informer.synced;
    const tDone = now();
    const cpu = process.cpuUsage(cpu0);
    await reply({ op: 'done', tStart, tDone, objects: events, cpuMs: (cpu.user + cpu.system) / 1000, ...memory() });
  } finally {
    await informer.stop();
  }
}

process.on('disconnect', () => process.exit(0));
main().then(
  () => process.exit(0),
  (e) =>
    void reply({ op: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) }).then(() =>
      process.exit(1),
    ),
);
