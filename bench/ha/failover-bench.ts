/**
 * Failover time of a planner group (issue 12 item 7): kill -9 of the leader → the first version
 * published by the new leader, over ≥ 10 kills, against a clean hand-over (SIGTERM: the leader
 * releases its lease) measured in the same run. Real processes: 3 clustered nats-servers, three
 * planners of one group (--replicas 3, --lease-ttl TTL), the manifests churned every 100 ms so a
 * new leader has a version to publish at once. "Published by the new leader" = the first delta on
 * sb.v.delta.* whose Sb-Term header is not the killed leader's term.
 *
 *   npx tsx bench/ha/failover-bench.ts [kills=10] [clean=5] [ttlMs=2000]
 *
 * Ends with one JSON line: kill and clean p50/max (ms), ttlMs, ratioKillVsClean (p50s),
 * ratioKillVsTtl (p50 / TTL).
 */
import { startHaFleet } from '../../test/ha/ha-fleet.ts';

const kills = Number(process.argv[2] ?? 10);
const clean = Number(process.argv[3] ?? 5);
const ttlMs = Number(process.argv[4] ?? 2000);

const fleet = await startHaFleet({ nodes: ['n1'], leaseTtlMs: ttlMs });
const firstByTerm: { at: number; term: number }[] = [];
try {
  const nc = await fleet.client();
  const sub = nc.subscribe('sb.v.delta.*');
  void (async () => {
    for await (const m of sub)
      firstByTerm.push({ at: performance.now(), term: Number(m.headers?.get('Sb-Term') ?? 0) });
  })();
  for (const name of ['a', 'b', 'c']) {
    await fleet.startPlanner(name);
    if (name === 'a') await fleet.leader(60_000);
  }
  await new Promise((r) => setTimeout(r, 3000)); // b and c caught up as followers
  const churn = fleet.churn(100);
  const measure = async (signal: 'SIGKILL' | 'SIGTERM'): Promise<number> => {
    const old = await fleet.leader(60_000);
    const from = firstByTerm.length;
    const t0 = performance.now();
    await fleet.kill(old.name, signal);
    for (;;) {
      const hit = firstByTerm.slice(from).find((x) => x.term !== old.term && x.term > 0);
      if (hit) {
        await fleet.startPlanner(old.name); // back as a follower for the next round
        await new Promise((r) => setTimeout(r, 1500)); // it caught up (bounded wait; the next kill targets the leader)
        return hit.at - t0;
      }
      if (performance.now() - t0 > 60_000)
        throw new Error(
          `no version from a new leader within 60 s after ${signal} of ${old.name} (logs in ${fleet.dir})`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const killMs: number[] = [];
  const cleanMs: number[] = [];
  // interleaved, so drift of the loaded machine hits both alike
  for (let i = 0; i < Math.max(kills, clean); i++) {
    if (i < kills) killMs.push(await measure('SIGKILL'));
    if (i < clean) cleanMs.push(await measure('SIGTERM'));
    process.stderr.write(
      `round ${i + 1}: kill ${killMs.at(-1)?.toFixed(0)} ms, clean ${cleanMs.at(-1)?.toFixed(0) ?? '-'} ms\n`,
    );
  }
  await churn.stop();
  const f = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { rounds: s.length, p50Ms: Math.round(s[Math.floor((s.length - 1) / 2)]!), maxMs: Math.round(s.at(-1)!) };
  };
  const k = f(killMs);
  const c = f(cleanMs);
  process.stdout.write(
    `${JSON.stringify({ kill: k, clean: c, ttlMs, ratioKillVsClean: +(k.p50Ms / c.p50Ms).toFixed(2), ratioKillVsTtl: +(k.p50Ms / ttlMs).toFixed(2) })}\n`,
  );
} finally {
  await fleet.close();
}
