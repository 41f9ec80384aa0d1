// Trace of every version through a NATS kill -9 churn (probe21 follow-up): the reconnect-churn
// group (planners a, b; dry-run appliers), and at every 50 ms: each planner's latestVersion and
// role, each node's applied (version, dataHash). At the end: each file's versions (number, hash)
// and SB_VERSIONS' version messages (number, hash, term), then a comparison: any node or stream
// message whose hash for a number differs from the surviving log's.
//   TRACE_ROUNDS=12 node --import tsx bench/soak/version-trace.ts
import path from 'node:path';
import Database from 'better-sqlite3';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startDryRunApplier, startGroupPlanner } from '../../test/ha/in-process-group.ts';
import { churnEnv, sleep, soakThresholds as th } from './soak-support.ts';

const ROUNDS = Number(process.env.TRACE_ROUNDS ?? 12);
const t0 = Date.now();
const T = () => ((Date.now() - t0) / 1000).toFixed(2);
const nodes = ['n1', 'n2', 'n3', 'n4'];
const { env, churn } = await churnEnv(nodes);
const stops: (() => Promise<unknown>)[] = [];
const sayAs = (id: string) => (l: string) => console.log(`${T()} say ${id}: ${l}`);
const dbs = { a: env.db, b: path.join(env.dir, 'b.db') };
const a = await startGroupPlanner(env, stops, { id: 'a', db: dbs.a, ...th, say: sayAs('a') });
await sleep(1000);
const b = await startGroupPlanner(env, stops, { id: 'b', db: dbs.b, ...th, say: sayAs('b') });
const appliers = [];
for (const n of nodes) appliers.push(await startDryRunApplier(env, stops, n, 200));
const seen = new Map<string, string>();
const versionsOf = (file: string) => {
  try {
    const d = new Database(file, { readonly: true, fileMustExist: true });
    const rows = d.prepare('SELECT version, hash FROM versions ORDER BY version').all() as {
      version: number;
      hash: string;
    }[];
    d.close();
    return rows;
  } catch (e) {
    return [];
  }
};
const nodeApplied: { t: string; node: string; version: number; hash: string }[] = [];
let polling = true;
const poll = (async () => {
  while (polling) {
    for (const [id, p] of [
      ['a', a],
      ['b', b],
    ] as const) {
      const s = (await fetch(`${p.url}/status`).then(
        (r) => r.json(),
        () => undefined,
      )) as { latestVersion: number; leader: { id: string } | null } | undefined;
      if (!s) continue;
      const k = `planner ${id} latest=${s.latestVersion} leader=${s.leader?.id ?? null}`;
      if (seen.get(id) !== k) {
        seen.set(id, k);
        const file = versionsOf(dbs[id])
          .slice(-3)
          .map((v) => `${v.version}:${v.hash.slice(0, 8)}`)
          .join(' ');
        console.log(`${T()} ${k} file[..]=${file}`);
      }
    }
    appliers.forEach((svc, i) => {
      const ap = svc.session()?.status().applied;
      if (!ap) return;
      const k = `${ap.version}:${ap.dataHash.slice(0, 8)}`;
      if (seen.get(nodes[i]!) !== k) {
        seen.set(nodes[i]!, k);
        nodeApplied.push({ t: T(), node: nodes[i]!, version: ap.version, hash: ap.dataHash });
        console.log(`${T()} node ${nodes[i]} applied ${k}`);
      }
    });
    await sleep(50);
  }
})();
await sleep(3000);
try {
  for (let round = 1; round <= ROUNDS; round++) {
    console.log(`${T()} ---- round ${round}: kill -9 NATS`);
    await env.nats.restart();
    for (let i = 0; i < 5; i++) {
      churn();
      await sleep(150);
    }
  }
  console.log(`${T()} ---- churn over`);
  await sleep(Number(process.env.TRACE_SETTLE_MS ?? 15_000));
  polling = false;
  await poll;
  const statusOf = async (p: typeof a) =>
    (await fetch(`${p.url}/status`)).json() as Promise<{ nodes: { name: string; status: string; version?: number }[] }>;
  for (const [id, p] of [
    ['a', a],
    ['b', b],
  ] as const)
    console.log(
      `${T()} status ${id}: ${JSON.stringify((await statusOf(p)).nodes.map((n) => [n.name, n.status, n.version]))}`,
    );
  const files = { a: versionsOf(dbs.a), b: versionsOf(dbs.b) };
  for (const [id, rows] of Object.entries(files))
    console.log(`file ${id}: ${rows.map((v) => `${v.version}:${v.hash.slice(0, 8)}`).join(' ')}`);
  const nc = await connect({ servers: env.nats.url });
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info('SB_VERSIONS');
  const stream: { seq: number; version: string; hash: string; term: string; subject: string }[] = [];
  for (let s = info.state.first_seq; s <= info.state.last_seq; s++) {
    const m = await jsm.streams.getMessage('SB_VERSIONS', { seq: s }).catch(() => undefined);
    if (!m) continue;
    const h = m.header;
    stream.push({
      seq: s,
      subject: m.subject,
      version: h?.get('Sb-Version') ?? '',
      hash: h?.get('Sb-Hash') ?? '',
      term: h?.get('Sb-Term') ?? '',
    });
  }
  for (const m of stream)
    if (m.version) console.log(`stream seq ${m.seq} ${m.subject} v${m.version} ${m.hash.slice(0, 8)} term ${m.term}`);
  await nc.close();
  const truth = new Map(files.b.map((v) => [v.version, v.hash]));
  const bad = [
    ...nodeApplied
      .filter((x) => truth.has(x.version) && truth.get(x.version) !== x.hash)
      .map(
        (x) =>
          `node ${x.node} at ${x.t} applied v${x.version} ${x.hash.slice(0, 8)} but log has ${truth.get(x.version)!.slice(0, 8)}`,
      ),
    ...nodeApplied
      .filter((x) => !truth.has(x.version))
      .map((x) => `node ${x.node} at ${x.t} applied v${x.version} the log lacks`),
    ...stream
      .filter((m) => m.version && m.hash && truth.get(Number(m.version)) !== m.hash)
      .map(
        (m) =>
          `stream seq ${m.seq} v${m.version} ${m.hash.slice(0, 8)} differs from log ${truth.get(Number(m.version))?.slice(0, 8)}`,
      ),
  ];
  console.log(
    bad.length ? `MISMATCH\n${bad.join('\n')}` : 'CONSISTENT: every applied version and stream message matches the log',
  );
} finally {
  polling = false;
  for (const s of stops.reverse()) await s().catch(() => undefined);
  await env.cleanup();
}
