import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { renderServerAuthConfig, VERSIONS_STREAM } from '../../libs/bus/index.ts';
import { readManifestDir } from '../../libs/kube/index.ts';
import { ClusterState } from '../../libs/planner/index.ts';
import { BIN, churnEndpoints, freePort, nodeCred, PLANNER_CRED, sliceYaml, svcYaml } from '../faults/fleet.ts';
import { startNatsCluster, type NatsClusterHandle } from '../support/nats-cluster.ts';

/**
 * A high-availability fleet as real processes: a 3-server JetStream cluster (per-node
 * permissions), planners of one group (`--replicas 3`, one signing key, a short `--lease-ttl`),
 * dry-run appliers given every server URL. Each process is stopped by PID; everything lives in one
 * temp dir removed at close() (kept with SB_KEEP_FAULT_DIRS=1 for a post-mortem).
 */
export const LEASE_TTL_MS = 2000;

export interface PlannerProc {
  readonly name: string;
  readonly api: string;
  readonly db: string;
  proc: ChildProcess | undefined;
}

export interface StatusBody {
  latestVersion: number;
  latestHash: string | null;
  lastError: string | null;
  self: { id: string; leader: boolean; term: number; lagRows: number | null };
  leader: { id: string; term: number } | null;
  planners: { id: string; leader: boolean; term: number; lagRows: number | null }[];
  nodes: { node: string; status: string; appliedVersion: number }[];
}

export interface HaFleet {
  readonly dir: string;
  readonly cluster: NatsClusterHandle;
  readonly nodes: readonly string[];
  readonly planners: Map<string, PlannerProc>;
  /** `nats`: the --nats list to give it (default: every server; one URL pins where it connects first). */
  startPlanner(name: string, extra?: string[], nats?: string): Promise<PlannerProc>;
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  startApplier(node: string): ChildProcess;
  write(file: string, text: string): void;
  /** A manifest change that moves the version. */
  edit(): void;
  churn(everyMs: number): { stop(): Promise<number> };
  status(name: string): Promise<StatusBody | undefined>;
  /** Polls the live planners until one says it leads (and the others name it). */
  leader(timeoutMs?: number, not?: string): Promise<{ name: string; term: number; ms: number }>;
  /** The newest version (on the leader) is a fresh plan of the directory and every node is SYNCED on it; versions gap-free. */
  converged(timeoutMs?: number): Promise<{ version: number; leader: string }>;
  /** Every genuine delta on the versions stream: version → [stream seq, term header]. */
  deltas(): Promise<Map<number, { seq: number; term: number }[]>>;
  /** The cluster's servers a planner process holds a NATS connection to (indexes into cluster.servers; from `ss`). */
  serversOf(name: string): number[];
  client(): Promise<NatsConnection>;
  /** The planners' log lines stamped at or after `since` (epoch ms), each file's name first: for a failed bound's message. */
  logsSince(since: number): string;
  close(): Promise<void>;
}

export async function startHaFleet(o: { nodes: string[]; leaseTtlMs?: number }): Promise<HaFleet> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-ha-'));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  const write = (file: string, text: string) => writeFileSync(path.join(manifests, file), text);
  write(
    'nodes.yaml',
    o.nodes
      .map(
        (n, i) =>
          `apiVersion: v1\nkind: Node\nmetadata: {name: ${n}}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.${i + 1}}]}\n`,
      )
      .join('---\n'),
  );
  write('web.yaml', svcYaml('web', '10.96.0.10') + '---\n' + sliceYaml('web', ['10.1.0.1', '10.1.0.2']));
  const cluster = await startNatsCluster({
    config: renderServerAuthConfig({
      planner: PLANNER_CRED,
      nodes: o.nodes.map((name) => ({ name, ...nodeCred(name) })),
    }),
    auth: { user: PLANNER_CRED.user, pass: PLANNER_CRED.password },
  }).catch(async (e) => {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  const keyFile = path.join(dir, 'planner.pem');
  const procs = new Set<ChildProcess>();
  const clients: NatsConnection[] = [];
  const killAll = () => {
    for (const p of procs) p.kill('SIGKILL');
  };
  process.once('exit', killAll);
  let logN = 0;
  let edits = 0;
  // Each line stamped as it arrives: the planner writes bare lines (a log collector stamps them in a
  // pod), and a failed time bound is only explained by when each step happened (logsSince).
  const spawnLogged = (name: string, args: string[]): ChildProcess => {
    const out = createWriteStream(path.join(dir, `${name}-${++logN}.log`));
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const from of [p.stdout!, p.stderr!])
      createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) =>
        out.write(`${new Date().toISOString()} ${line}\n`),
      );
    procs.add(p);
    p.once('exit', () => {
      procs.delete(p);
      setTimeout(() => out.end(), 100); // after the pipes' last lines
    });
    return p;
  };
  const planners = new Map<string, PlannerProc>();
  const ttl = o.leaseTtlMs ?? LEASE_TTL_MS;

  let witness: NatsConnection | undefined;
  const readDeltas = async () => {
    witness ??= await fleet.client();
    const jsm = await jetstreamManager(witness);
    const info = await jsm.streams.info(VERSIONS_STREAM);
    const out = new Map<number, { seq: number; term: number }[]>();
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams
        .getMessage(VERSIONS_STREAM, { seq })
        .catch((e: { code?: number }) => (e.code === 10037 ? null : Promise.reject(e)));
      const v = m && /^sb\.v\.delta\.(\d+)$/.exec(m.subject);
      if (!m || !v) continue;
      const list = out.get(Number(v[1])) ?? [];
      list.push({ seq, term: Number(m.header?.get('Sb-Term') ?? 0) });
      out.set(Number(v[1]), list);
    }
    return out;
  };
  const fleet: HaFleet = {
    dir,
    cluster,
    nodes: o.nodes,
    planners,
    async startPlanner(name, extra = [], nats = cluster.urls) {
      let p = planners.get(name);
      if (!p) {
        p = { name, api: `http://127.0.0.1:${await freePort()}`, db: path.join(dir, `${name}.db`), proc: undefined };
        planners.set(name, p);
      }
      p.proc = spawnLogged(`planner-${name}`, [
        'planner',
        '--manifests',
        manifests,
        '--nats',
        nats,
        '--db',
        p.db,
        '--http',
        p.api.slice('http://'.length),
        '--nats-user',
        PLANNER_CRED.user,
        '--nats-password',
        PLANNER_CRED.password,
        '--signing-key',
        keyFile,
        '--replicas',
        '3',
        '--id',
        name,
        '--lease-ttl',
        `${ttl}ms`,
        ...extra,
      ]);
      return p;
    },
    async kill(name, signal = 'SIGKILL') {
      const p = planners.get(name)?.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      if (signal !== 'SIGKILL' && signal !== 'SIGTERM') {
        p.kill(signal);
        return;
      }
      const gone = new Promise<void>((res) => p.once('exit', () => res()));
      p.kill(signal);
      await gone;
    },
    startApplier(node) {
      return spawnLogged(`applier-${node}`, [
        'applier',
        '--node',
        node,
        '--nats',
        cluster.urls,
        '--mode',
        'dry-run',
        '--state-dir',
        path.join(dir, `state-${node}`),
        '--heartbeat',
        '500',
        '--user',
        nodeCred(node).user,
        '--password',
        nodeCred(node).password,
        '--planner-key',
        `${keyFile}.pub`,
      ]);
    },
    write,
    edit() {
      edits++;
      write('edit.yaml', svcYaml('edit', `10.96.1.${(edits % 250) + 1}`));
    },
    churn(everyMs) {
      return churnEndpoints(write, everyMs);
    },
    logsSince(since) {
      const from = new Date(since).toISOString();
      return readdirSync(dir)
        .filter((f) => f.startsWith('planner-') && f.endsWith('.log'))
        .map((f) => {
          const lines = readFileSync(path.join(dir, f), 'utf8')
            .split('\n')
            .filter((l) => l.slice(0, from.length) >= from);
          return lines.length ? `${f}:\n${lines.join('\n')}` : '';
        })
        .filter(Boolean)
        .join('\n');
    },
    async status(name) {
      const p = planners.get(name);
      if (!p) return undefined;
      try {
        const r = await fetch(`${p.api}/status`, { signal: AbortSignal.timeout(2000) });
        return r.ok ? ((await r.json()) as StatusBody) : undefined;
      } catch {
        return undefined;
      }
    },
    async leader(timeoutMs = 60_000, not) {
      const t0 = Date.now();
      for (;;) {
        for (const [name, p] of planners) {
          if (name === not || !p.proc || p.proc.exitCode !== null || p.proc.signalCode !== null) continue;
          const s = await fleet.status(name);
          if (s?.self.leader) return { name, term: s.self.term, ms: Date.now() - t0 };
        }
        if (Date.now() - t0 > timeoutMs) throw new Error(`no leader within ${timeoutMs} ms (logs in ${dir})`);
        await new Promise((r) => setTimeout(r, 100)); // polling processes we do not share memory with
      }
    },
    async converged(timeoutMs = 90_000) {
      const t0 = Date.now();
      let last = '';
      for (;;) {
        try {
          const l = await fleet.leader(5000);
          const s = await fleet.status(l.name);
          const { objects } = await readManifestDir(manifests);
          const fresh = ClusterState.fromObjects(objects).hash();
          if (!s) last = 'leader status unreadable';
          else if (s.latestHash !== fresh)
            last = `newest version ${s.latestVersion} on ${l.name} is not a fresh plan of the directory (${s.lastError ?? 'no error'})`;
          else {
            const behind = o.nodes.filter(
              (n) =>
                !s.nodes.some((x) => x.node === n && x.status === 'SYNCED' && x.appliedVersion === s.latestVersion),
            );
            if (behind.length) last = `not SYNCED on ${s.latestVersion}: ${behind.join(', ')}`;
            else {
              const { versions } = (await (await fetch(`${planners.get(l.name)!.api}/versions`)).json()) as {
                versions: { version: number }[];
              };
              const numbers = versions.map((v) => v.version);
              if (numbers.some((v, i) => v !== i + 1))
                throw new Error(`versions on ${l.name} have gaps: ${numbers.join(',')}`);
              return { version: s.latestVersion, leader: l.name };
            }
          }
        } catch (e) {
          if (/gaps/.test((e as Error).message)) throw e;
          last = (e as Error).message;
        }
        if (Date.now() - t0 > timeoutMs)
          throw new Error(`fleet did not converge in ${timeoutMs} ms: ${last} (logs in ${dir})`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    serversOf(name) {
      const pid = planners.get(name)?.proc?.pid;
      if (!pid) return [];
      const lines = execFileSync('ss', ['-Htnp', 'state', 'established'], { encoding: 'utf8' }).split('\n');
      const ports = new Set(
        lines.filter((l) => l.includes(`pid=${pid},`)).map((l) => Number(/\S+:(\d+)\s+users:/.exec(l)?.[1])),
      );
      return cluster.servers.flatMap((s, i) => (ports.has(s.port) ? [i] : []));
    },
    async deltas() {
      // a stream whose leader server was just killed answers once it elected another: retry
      for (let attempt = 1; ; attempt++) {
        try {
          return await readDeltas();
        } catch (e) {
          if (attempt >= 20) throw e;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    },
    async client() {
      const nc = await connect({
        servers: cluster.urls.split(','),
        user: PLANNER_CRED.user,
        pass: PLANNER_CRED.password,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 200,
      });
      clients.push(nc);
      return nc;
    },
    async close() {
      for (const nc of clients) await nc.close().catch(() => undefined);
      for (const p of procs) {
        p.kill('SIGCONT');
        p.kill('SIGKILL');
      }
      await Promise.all(
        [...procs].map(
          (p) =>
            new Promise((res) => (p.exitCode !== null || p.signalCode !== null ? res(undefined) : p.once('exit', res))),
        ),
      );
      await cluster.stop();
      if (!process.env.SB_KEEP_FAULT_DIRS) rmSync(dir, { recursive: true, force: true });
    },
  };
  return fleet;
}
