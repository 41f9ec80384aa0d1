// The growth mechanisms of a long-running fleet, at test speed, in one process: a planner group
// of two (a, b) and SOAK_APPLIERS dry-run appliers on one nats-server, driven for SOAK_ROUNDS
// rounds; each round restarts NATS (every reconnect, lease loss and re-election at once), writes
// a few manifest changes, and polls /status, /metrics and the console snapshot. Heap after full
// GC and active resources are sampled every 10 rounds (one process: any growth is then looked
// for with a heap snapshot diff, SOAK_SNAPSHOTS=dir writes one at the first and the last sample).
//
//   SOAK_ROUNDS=100 node --expose-gc --import tsx bench/soak/reconnect-churn.ts
import path from 'node:path';
import v8 from 'node:v8';
import { startDryRunApplier, startGroupPlanner } from '../../test/ha/in-process-group.ts';
import { churnEnv, sleep, soakThresholds as th } from './soak-support.ts';

const ROUNDS = Number(process.env.SOAK_ROUNDS ?? 100);
const APPLIERS = Number(process.env.SOAK_APPLIERS ?? 4);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const nodes = Array.from({ length: APPLIERS }, (_, i) => `n${i + 1}`);
const { env, churn } = await churnEnv(nodes);
const stops: (() => Promise<unknown>)[] = [];
const a = await startGroupPlanner(env, stops, { id: 'a', db: env.db, ...th });
await sleep(1000);
const b = await startGroupPlanner(env, stops, { id: 'b', db: path.join(env.dir, 'b.db'), ...th });
for (const n of nodes) await startDryRunApplier(env, stops, n, 200);
await sleep(3000);

const sample = async (round: number) => {
  await sleep(0);
  gc();
  gc();
  const res: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) res[r] = (res[r] ?? 0) + 1;
  type Status = { nodes: { status: string }[]; latestVersion: number; leader: { id: string } | null };
  const [s, sb] = (await Promise.all([a, b].map(async (p) => (await fetch(`${p.url}/status`)).json()))) as Status[];
  console.log(
    JSON.stringify({
      round,
      heapMiB: +(process.memoryUsage().heapUsed / 2 ** 20).toFixed(2),
      res,
      latest: [s!.latestVersion, sb!.latestVersion],
      leader: [s!.leader?.id ?? null, sb!.leader?.id ?? null],
      statuses: [s!, sb!].map((x) => x.nodes.map((n) => n.status).join(',')),
    }),
  );
  if (process.env.SOAK_SNAPSHOTS && (round === 10 || round === ROUNDS + 1))
    v8.writeHeapSnapshot(path.join(process.env.SOAK_SNAPSHOTS, `round-${round}.heapsnapshot`));
};
try {
  for (let round = 1; round <= ROUNDS; round++) {
    await env.nats.restart();
    for (let i = 0; i < 5; i++) {
      churn();
      await sleep(150);
      for (const p of [a, b])
        for (const u of ['/status', '/metrics', '/ui/api/snapshot', '/readyz'])
          await fetch(`${p.url}${u}`).then(
            (r) => r.arrayBuffer(),
            () => undefined,
          );
    }
    if (round % Number(process.env.SOAK_EVERY ?? 10) === 0) await sample(round);
  }
  // then quiet: every node SYNCED on both planners' views and both views equal, or what is left
  await sleep(Number(process.env.SOAK_SETTLE_MS ?? 15_000));
  await sample(ROUNDS + 1);
} finally {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  await env.cleanup();
}
