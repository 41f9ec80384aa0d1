// Long-running fleet, compressed: a planner group (2 planner processes), N dry-run applier
// processes, a real nats-server and the test Kubernetes API server, driven for SOAK_MINUTES with
// Service/EndpointSlice churn, node joins/leaves (new names each time), NATS restarts and freezes,
// leader changes, applier restarts, rollouts/rollbacks, and steady polling of every HTTP endpoint.
// Every child runs with --expose-gc and bench/soak/sampler.mjs preloaded (heap after GC, RSS,
// active resources, fds every SOAK_SAMPLE_MS); this driver samples nats-server (/connz, /jsz), the
// SQLite files and the planners' /metrics. Everything lands in $SOAK_DIR (default a temp dir):
// samples/*.jsonl, events.jsonl, driver.jsonl, logs/*.log. Summarise with bench/soak/summary.ts.
//
//   SOAK_MINUTES=20 SOAK_NODES=12 node --import tsx bench/soak/fleet-soak.ts
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOrCreateSigningKey } from '../../libs/bus/index.ts';
import { KubeApiServer } from '../../test/support/kube-api-server/index.ts';
import { writeKubeconfig } from '../../test/support/kubeconfig.ts';
import { freePort } from '../../test/support/nats-server.ts';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 20);
const NODES = Number(process.env.SOAK_NODES ?? 12);
const SERVICES = Number(process.env.SOAK_SERVICES ?? 30);
const DIR = process.env.SOAK_DIR ?? mkdtempSync(path.join(tmpdir(), 'sb-soak-'));
const BIN = path.resolve('bin/switchboard');
const SAMPLER = path.resolve('bench/soak/sampler.mjs');
mkdirSync(path.join(DIR, 'logs'), { recursive: true });
mkdirSync(path.join(DIR, 'samples'), { recursive: true });
const t0 = Date.now();
const now = () => Math.round((Date.now() - t0) / 1000);
const ev = (kind: string, detail: Record<string, unknown> = {}) =>
  appendFileSync(path.join(DIR, 'events.jsonl'), `${JSON.stringify({ t: now(), kind, ...detail })}\n`);
const drv = (o: Record<string, unknown>) =>
  appendFileSync(path.join(DIR, 'driver.jsonl'), `${JSON.stringify({ t: now(), ...o })}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

const kube = await KubeApiServer.start({ bookmarkIntervalMs: 5000 });
const kc = await writeKubeconfig({ server: kube.url, dir: DIR });
const node = (name: string, i: number) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'topology.kubernetes.io/zone': i % 2 ? 'zone-a' : 'zone-b' } },
  status: { addresses: [{ type: 'InternalIP', address: `192.0.${2 + Math.floor(i / 250)}.${(i % 250) + 1}` }] },
});
const svc = (i: number) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: `svc-${i}`, namespace: 'default' },
  spec: {
    type: i % 3 === 0 ? 'NodePort' : 'ClusterIP',
    clusterIP: `10.96.1.${i + 1}`,
    clusterIPs: [`10.96.1.${i + 1}`],
    ports: [
      { name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, ...(i % 3 === 0 ? { nodePort: 30000 + i } : {}) },
    ],
  },
});
let sliceGen = 0;
const slice = (i: number) => {
  sliceGen++;
  const n = 1 + (sliceGen % 4);
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `svc-${i}-abc`, namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: Array.from({ length: n }, (_, k) => ({
      addresses: [`10.${2 + (i % 200)}.${(sliceGen >> 8) % 250}.${((sliceGen + k) % 250) + 1}`],
      conditions: { ready: true },
    })),
  };
};
let nodeSeq = 0;
const liveNodes: string[] = [];
/** The first half of the nodes never leave nor restart: their appliers live the whole soak. */
const stable = new Set<string>();
for (let i = 0; i < NODES; i++) {
  const n = `n${String(++nodeSeq).padStart(4, '0')}`;
  kube.create('Node', node(n, nodeSeq));
  liveNodes.push(n);
  if (i < NODES / 2) stable.add(n);
}
for (let i = 0; i < SERVICES; i++) {
  kube.create('Service', svc(i));
  kube.create('EndpointSlice', slice(i));
}

// ---- nats-server, ours (so a freeze is SIGSTOP to its PID) --------------------------------------
const natsPort = await freePort();
const monPort = await freePort();
const natsDir = path.join(DIR, 'nats');
mkdirSync(natsDir, { recursive: true });
writeFileSync(
  path.join(natsDir, 'server.conf'),
  `listen: "127.0.0.1:${natsPort}"\nhttp: "127.0.0.1:${monPort}"\njetstream { store_dir: ${JSON.stringify(path.join(natsDir, 'js'))} }\n`,
);
let nats: ChildProcess | undefined;
const natsUrl = `nats://127.0.0.1:${natsPort}`;
const mon = `http://127.0.0.1:${monPort}`;
const startNats = async () => {
  const out = openSync(path.join(DIR, 'logs', 'nats.log'), 'a');
  nats = spawn(process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server', ['-c', path.join(natsDir, 'server.conf')], {
    stdio: ['ignore', out, out],
  });
  for (let i = 0; i < 100; i++) {
    if (
      await fetch(`${mon}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    await sleep(100);
  }
  throw new Error('nats-server did not start');
};
const killPid = async (p: ChildProcess | undefined, sig: NodeJS.Signals = 'SIGKILL') => {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((res) => p.once('exit', () => res()));
  p.kill(sig);
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
};
await startNats();

// ---- processes --------------------------------------------------------------------------------
const keyFile = path.join(DIR, 'planner.pem');
loadOrCreateSigningKey(keyFile);
const procs = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of procs) p.kill('SIGKILL');
  nats?.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130)); // 'exit' kills the fleet
const incarnation = new Map<string, number>();
const spawnChild = (name: string, args: string[]): ChildProcess => {
  const k = (incarnation.get(name) ?? 0) + 1;
  incarnation.set(name, k);
  const tag = `${name}~${k}`;
  const out = openSync(path.join(DIR, 'logs', `${tag}.log`), 'w');
  const p = spawn(process.execPath, ['--expose-gc', '--import', SAMPLER, BIN, ...args], {
    stdio: ['ignore', out, out],
    env: { ...process.env, SOAK_DIR: DIR, SOAK_TAG: tag, SOAK_SAMPLE_MS: process.env.SOAK_SAMPLE_MS ?? '20000' },
  });
  procs.add(p);
  p.once('exit', () => procs.delete(p));
  return p;
};

type Id = 'a' | 'b' | 'c';
const plannerPorts: Record<Id, number> = { a: await freePort(), b: await freePort(), c: await freePort() };
const planners: Record<Id, ChildProcess | undefined> = { a: undefined, b: undefined, c: undefined };
const startPlanner = (id: Id) => {
  planners[id] = spawnChild(`planner-${id}`, [
    'planner',
    '--kubeconfig',
    kc.path,
    '--nats',
    natsUrl,
    '--db',
    path.join(DIR, `log-${id}.db`),
    '--http',
    `127.0.0.1:${plannerPorts[id]}`,
    '--id',
    id,
    '--lease-ttl',
    '3s',
    '--signing-key',
    keyFile,
  ]);
};
const api = (id: Id) => `http://127.0.0.1:${plannerPorts[id]}`;
const appliers = new Map<string, { p: ChildProcess; port: number }>();
const startApplier = async (n: string) => {
  const port = await freePort();
  const p = spawnChild(`applier-${n}`, [
    'applier',
    '--node',
    n,
    '--nats',
    natsUrl,
    '--mode',
    'dry-run',
    '--state-dir',
    path.join(DIR, `state-${n}`),
    '--heartbeat',
    '1000',
    '--http',
    `127.0.0.1:${port}`,
    '--planner-key',
    `${keyFile}.pub`,
  ]);
  appliers.set(n, { p, port });
};

startPlanner('a');
await sleep(4000);
startPlanner('b');
for (const n of liveNodes) await startApplier(n);
ev('started', { nodes: liveNodes.length, services: SERVICES, dir: DIR });
process.stderr.write(`soak: ${DIR}\n`);

// ---- helpers ----------------------------------------------------------------------------------
const getJson = async (url: string): Promise<any> => {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return await r.json();
  } catch (e) {
    return { error: String(e) };
  }
};
const leader = async (): Promise<Id | undefined> => {
  for (const id of ['a', 'b'] as const) {
    const s = await getJson(`${api(id)}/status`);
    const l = s?.leader?.id;
    if (l === 'a' || l === 'b' || l === 'c') return l;
  }
  return undefined;
};
const ctl = (args: string[]) =>
  new Promise<{ code: number; out: string }>((res) => {
    execFile(process.execPath, [BIN, 'ctl', ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}`.slice(-600) }),
    );
  });

// ---- drivers ----------------------------------------------------------------------------------
let stopping = false;
const loops: Promise<void>[] = [];
const every = (ms: number, f: () => Promise<void>) =>
  loops.push(
    (async () => {
      await sleep(ms * Math.random());
      while (!stopping) {
        try {
          await f();
        } catch (e) {
          ev('driver-error', { error: String(e) });
        }
        await sleep(ms);
      }
    })(),
  );
const count: Record<string, number> = {};
const bump = (k: string) => {
  count[k] = (count[k] ?? 0) + 1;
};

// EndpointSlice churn (and now and then a Service's port changes)
every(700, async () => {
  const i = Math.floor(Math.random() * SERVICES);
  kube.update('EndpointSlice', slice(i));
  bump('slice');
});
every(15_000, async () => {
  const i = Math.floor(Math.random() * SERVICES);
  const s = svc(i);
  s.spec.ports[0]!.port = 80 + ((count.svc ?? 0) % 3);
  kube.update('Service', s);
  bump('svc');
});
// node join / leave, new names each time (the autoscaler case)
every(20_000, async () => {
  if (liveNodes.length > NODES - 2 && (liveNodes.length >= NODES + 2 || Math.random() < 0.5)) {
    const movable = liveNodes.filter((x) => !stable.has(x));
    const n = pick(movable);
    liveNodes.splice(liveNodes.indexOf(n), 1);
    await killPid(appliers.get(n)?.p, 'SIGTERM');
    appliers.delete(n);
    kube.delete('Node', { name: n });
    ev('node-leave', { node: n });
    bump('leave');
  } else {
    const n = `n${String(++nodeSeq).padStart(4, '0')}`;
    kube.create('Node', node(n, nodeSeq));
    liveNodes.push(n);
    await startApplier(n);
    ev('node-join', { node: n });
    bump('join');
  }
});
// NATS restart (kill -9 + start) or freeze (SIGSTOP 4 s)
every(70_000, async () => {
  if ((count.natsRestart ?? 0) <= (count.natsFreeze ?? 0)) {
    await killPid(nats);
    await sleep(1500);
    await startNats();
    ev('nats-restart');
    bump('natsRestart');
  } else {
    nats?.kill('SIGSTOP');
    await sleep(4000);
    nats?.kill('SIGCONT');
    ev('nats-freeze');
    bump('natsFreeze');
  }
});
// leader change without a restart: the leader is frozen (SIGSTOP) past its lease TTL, another
// planner takes over, the frozen one comes back deposed. Planners a and b live the whole soak;
// c joins and leaves the group now and then (a member record per id).
every(40_000, async () => {
  const id = await leader();
  const p = id ? planners[id] : undefined;
  if (!id || !p) return ev('leader-change-skipped', { why: 'no leader seen' });
  p.kill('SIGSTOP');
  await sleep(6000);
  p.kill('SIGCONT');
  ev('leader-freeze', { frozen: id });
  bump('leaderChange');
});
every(150_000, async () => {
  if (planners.c && planners.c.exitCode === null && planners.c.signalCode === null) {
    await killPid(planners.c, (count.cStop ?? 0) % 2 ? 'SIGKILL' : 'SIGTERM');
    planners.c = undefined;
    ev('planner-c-stop');
    bump('cStop');
  } else {
    startPlanner('c');
    ev('planner-c-start');
  }
});
// applier restart (SIGTERM or SIGKILL)
every(30_000, async () => {
  const n = pick(liveNodes.filter((x) => !stable.has(x)));
  const a = appliers.get(n);
  if (!a) return;
  const hard = Math.random() < 0.4;
  await killPid(a.p, hard ? 'SIGKILL' : 'SIGTERM');
  await startApplier(n);
  ev('applier-restart', { node: n, hard });
  bump('applierRestart');
});
// rollouts and rollbacks through ctl
every(50_000, async () => {
  const id = (await leader()) ?? 'a';
  const k = count.rollout ?? 0;
  const r =
    k % 4 === 3
      ? await ctl(['--server', api(id), 'rollback', '--reason', `soak ${k}`])
      : await ctl([
          '--server',
          api(id),
          'config',
          'set',
          k % 2 ? 'scheduler=rr' : 'scheduler=wrr',
          '--waves',
          '1,50%,100%',
          '--wave-timeout',
          '30s',
          '--reason',
          `soak ${k}`,
        ]);
  ev(k % 4 === 3 ? 'rollback' : 'rollout', { code: r.code, out: r.out.slice(0, 300) });
  bump('rollout');
});
// polling: every endpoint of both planners each second, appliers' /metrics, SSE, ctl status
const paths = ['/status', '/readyz', '/healthz', '/livez', '/metrics', '/versions', '/config', '/ui/api/snapshot'];
every(1000, async () => {
  await Promise.all(
    (['a', 'b'] as const).flatMap((id) =>
      paths.map((p) =>
        fetch(`${api(id)}${p}`, { signal: AbortSignal.timeout(5000) }).then(
          (r) => r.arrayBuffer(),
          () => undefined,
        ),
      ),
    ),
  );
  bump('poll');
});
every(3000, async () => {
  await Promise.all(
    [...appliers.values()].map((a) =>
      Promise.all(
        ['/metrics', '/readyz', '/healthz', '/status'].map((p) =>
          fetch(`http://127.0.0.1:${a.port}${p}`, { signal: AbortSignal.timeout(5000) }).then(
            (r) => r.arrayBuffer(),
            () => undefined,
          ),
        ),
      ),
    ),
  );
});
every(5000, async () => {
  // the console's event stream: open, read a little, drop (a browser tab closed)
  const id = pick(['a', 'b'] as const);
  const ac = new AbortController();
  try {
    const r = await fetch(`${api(id)}/ui/api/events`, { signal: ac.signal });
    const reader = r.body?.getReader();
    const until = Date.now() + 1500;
    while (reader && Date.now() < until) {
      const x = await Promise.race([reader.read(), sleep(500).then(() => undefined)]);
      if (!x || x.done) break;
    }
  } catch {}
  ac.abort();
  bump('sse');
});
every(15_000, async () => {
  const id = pick(['a', 'b'] as const);
  await ctl(['--server', api(id), 'status']);
  await ctl(['--server', api(id), 'rollout', 'status']);
  bump('ctlStatus');
});

// ---- driver-side samples ------------------------------------------------------------------------
const fileSize = (f: string) => (existsSync(f) ? statSync(f).size : 0);
const procStatus = (pid: number | undefined) => {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024;
  } catch {
    return -1;
  }
};
every(20_000, async () => {
  const connz = await getJson(`${mon}/connz?subs=1&limit=1024`);
  const subsByName: Record<string, number> = {};
  for (const c of connz.connections ?? [])
    subsByName[c.name ?? c.cid] = (subsByName[c.name ?? c.cid] ?? 0) + (c.subscriptions ?? 0);
  const jsz = await getJson(`${mon}/jsz?streams=1`);
  const streams: Record<string, unknown> = {};
  for (const a of jsz.account_details ?? [])
    for (const s of a.stream_detail ?? [])
      streams[s.name] = { msgs: s.state?.messages, bytes: s.state?.bytes, consumers: s.state?.consumer_count };
  const varz = await getJson(`${mon}/varz`);
  const dbs: Record<string, number> = {};
  for (const f of readdirSync(DIR)) if (/\.db(-wal|-shm)?$/.test(f)) dbs[f] = fileSize(path.join(DIR, f));
  const statuses: Record<string, unknown> = {};
  for (const id of ['a', 'b'] as const) {
    const s = await getJson(`${api(id)}/status`);
    const byStatus: Record<string, number> = {};
    for (const n of s.nodes ?? []) byStatus[n.status] = (byStatus[n.status] ?? 0) + 1;
    statuses[id] = {
      rows: s.nodes?.length,
      byStatus,
      latest: s.latestVersion,
      rollout: s.rollout?.status,
      err: s.error,
    };
  }
  drv({
    conns: connz.num_connections,
    subsTotal: Object.values(subsByName).reduce((a, b) => a + b, 0),
    subsByName,
    streams,
    natsRssMiB: procStatus(nats?.pid),
    natsMem: varz.mem,
    dbs,
    statuses,
    live: liveNodes.length,
    count,
    kubeWatches: kube.openWatchCount,
  });
  kube.clearRequests(); // the test API server's own request log, not the system under test
});

await sleep(MINUTES * 60_000);
stopping = true;
await Promise.all(loops);
ev('stopping', { count });
for (const p of [...procs]) await killPid(p, 'SIGTERM');
await killPid(nats, 'SIGTERM');
await kube.stop();
process.stderr.write(`soak: done, ${DIR}\n`);
process.exit(0);
