import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  connectBus,
  loadOrCreateSigningKey,
  newestPublishedAnchor,
  renderServerAuthConfig,
  verifierFromPem,
  type Signer,
} from '../../libs/bus/index.ts';
import { checkVersionAnchor, EventLog, verifyLog } from '../../libs/eventlog/index.ts';
import { readManifestDir } from '../../libs/kube/index.ts';
import { ClusterState } from '../../libs/planner/index.ts';
import { freePort, startNatsServer, type NatsServerHandle } from '../support/nats-server.ts';

export { freePort };

/**
 * A whole Switchboard fleet as real processes, for the fault suite: nats-server with per-node
 * permissions, `switchboard planner` on a manifests directory, `switchboard applier` (dry-run)
 * per node, each a child process that a round may kill -9 and start again. Processes are
 * stopped by PID; everything lives in one temp dir removed at close().
 *
 * `converged()` is the check every round ends with: versions gap-free, `db verify --deep`
 * (every version replays to its recorded hash) and the tail anchored by the stream, the newest
 * version equal to a fresh plan of the directory, every node SYNCED on it.
 */
export const BIN = path.resolve('bin/switchboard');
export const PLANNER_CRED = { user: 'planner', password: 'planner-fault-pw' };
export const nodeCred = (n: string) => ({ user: `node-${n}`, password: `pw-${n}` });

export interface Fleet {
  readonly dir: string;
  readonly manifests: string;
  readonly db: string;
  readonly nats: NatsServerHandle;
  readonly signer: Signer;
  readonly nodes: readonly string[];
  /** Whether the log's directory is a tmpfs of its own (a disk-full round needs it). */
  readonly dbOnTmpfs: boolean;
  readonly dbDir: string;
  /** The planner's HTTP API (fixed port, so it survives restarts). */
  readonly api: string;
  startPlanner(extra?: string[]): ChildProcess;
  /** A second planner process on another log (it follows the first). */
  spawnPlanner(db: string, httpPort: number, extra?: string[]): ChildProcess;
  killPlanner(): Promise<void>;
  startApplier(node: string): ChildProcess;
  write(file: string, text: string): void;
  /** Rewrites churn.yaml every `everyMs` until the returned stop() is called. */
  churn(everyMs: number): { stop(): Promise<number> };
  /** A planner-side client connection (for garbage and witness reads). */
  client(): Promise<NatsConnection>;
  converged(timeoutMs?: number): Promise<{ version: number; ms: number }>;
  close(): Promise<void>;
}

export async function startFleet(o: { nodes: string[]; tmpfsMiB?: number }): Promise<Fleet> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-faults-'));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  // the log on its own small filesystem, so a round can fill the disk under the planner
  const dbDir = path.join(dir, 'db');
  mkdirSync(dbDir);
  const mounted = o.tmpfsMiB ? mountTmpfs(dbDir, o.tmpfsMiB) : false;
  const db = path.join(dbDir, 'log.db');
  const keyFile = path.join(dir, 'planner.pem');
  const signer = loadOrCreateSigningKey(keyFile);
  const write = (file: string, text: string) => writeFileSync(path.join(manifests, file), text);
  write('nodes.yaml', o.nodes.map((n, i) => nodeYaml(n, `192.0.2.${i + 1}`)).join('---\n'));
  write('web.yaml', svcYaml('web', '10.96.0.10') + '---\n' + sliceYaml('web', ['10.1.0.1', '10.1.0.2']));
  const nats = await startNatsServer({
    jetstream: true,
    config: renderServerAuthConfig({
      planner: PLANNER_CRED,
      nodes: o.nodes.map((name) => ({ name, ...nodeCred(name) })),
    }),
  });
  const httpPort = await freePort();
  const procs = new Set<ChildProcess>();
  const clients: NatsConnection[] = [];
  let planner: ChildProcess | undefined;
  let logN = 0;

  const killAll = () => {
    for (const p of procs) p.kill('SIGKILL');
  };
  process.once('exit', killAll); // a test process that dies leaves no fleet behind
  const spawnLogged = (name: string, args: string[]): ChildProcess => {
    const out = openSync(path.join(dir, `${name}-${++logN}.log`), 'w');
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', out, out] });
    procs.add(p);
    p.once('exit', () => procs.delete(p));
    return p;
  };
  const plannerArgs = (logFile: string, port: number) => [
    'planner',
    '--manifests',
    manifests,
    '--nats',
    nats.url,
    '--db',
    logFile,
    '--http',
    `127.0.0.1:${port}`,
    '--nats-user',
    PLANNER_CRED.user,
    '--nats-password',
    PLANNER_CRED.password,
    '--signing-key',
    keyFile,
  ];

  const fleet: Fleet = {
    dir,
    manifests,
    db,
    nats,
    signer,
    nodes: o.nodes,
    dbOnTmpfs: mounted,
    dbDir,
    api: `http://127.0.0.1:${httpPort}`,
    startPlanner(extra = []) {
      planner = spawnLogged('planner', [...plannerArgs(db, httpPort), ...extra]);
      return planner;
    },
    spawnPlanner(otherDb, port, extra = []) {
      return spawnLogged('planner-2', [...plannerArgs(otherDb, port), ...extra]);
    },
    async killPlanner() {
      const p = planner;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise<void>((res) => p.once('exit', () => res()));
      p.kill('SIGKILL');
      await gone;
    },
    startApplier(node) {
      const state = path.join(dir, `state-${node}`);
      return spawnLogged(`applier-${node}`, [
        'applier',
        '--node',
        node,
        '--nats',
        nats.url,
        '--mode',
        'dry-run',
        '--state-dir',
        state,
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
    churn(everyMs) {
      return churnEndpoints(write, everyMs);
    },
    async client() {
      const nc = await connectBus({ servers: nats.url, name: 'fault-client', auth: PLANNER_CRED });
      clients.push(nc);
      return nc;
    },
    async converged(timeoutMs = 90_000) {
      const t0 = Date.now();
      let last = '';
      for (;;) {
        const r = await checkOnce(fleet).catch((e: Error) => ({ ok: false as const, why: e.message }));
        if (r.ok) {
          await checkLog(fleet, r.version);
          return { version: r.version, ms: Date.now() - t0 };
        }
        last = r.why;
        if (Date.now() - t0 > timeoutMs)
          throw new Error(`fleet did not converge in ${timeoutMs} ms: ${last} (logs in ${dir})`);
        await new Promise((res) => setTimeout(res, 250)); // polling processes we do not share memory with
      }
    },
    async close() {
      for (const nc of clients) await nc.close().catch(() => undefined);
      for (const p of procs) p.kill('SIGKILL');
      await Promise.all(
        [...procs].map(
          (p) =>
            new Promise((res) => (p.exitCode !== null || p.signalCode !== null ? res(undefined) : p.once('exit', res))),
        ),
      );
      await nats.stop();
      if (mounted) execFileSync('umount', [dbDir]);
      if (!process.env.SB_KEEP_FAULT_DIRS) rmSync(dir, { recursive: true, force: true });
    },
  };
  return fleet;
}

interface StatusBody {
  latestVersion: number;
  latestHash: string | null;
  nodes: { node: string; status: string; appliedVersion: number }[];
}

/** One look at the fleet: the newest version is the directory's content and every node runs it. */
async function checkOnce(f: Fleet): Promise<{ ok: true; version: number } | { ok: false; why: string }> {
  const { objects } = await readManifestDir(f.manifests);
  const fresh = ClusterState.fromObjects(objects).hash();
  const s = (await (await fetch(`${f.api}/status`)).json()) as StatusBody;
  if (s.latestHash !== fresh)
    return { ok: false, why: `newest version ${s.latestVersion} is not a fresh plan of the directory` };
  const behind = f.nodes.filter(
    (n) => !s.nodes.some((x) => x.node === n && x.status === 'SYNCED' && x.appliedVersion === s.latestVersion),
  );
  if (behind.length)
    return {
      ok: false,
      why: `not SYNCED on ${s.latestVersion}: ${behind.map((n) => `${n} ${JSON.stringify(s.nodes.find((x) => x.node === n) ?? 'absent')}`).join(', ')}`,
    };
  const { versions } = (await (await fetch(`${f.api}/versions`)).json()) as { versions: { version: number }[] };
  const numbers = versions.map((v) => v.version);
  if (numbers.some((v, i) => v !== i + 1)) throw new Error(`versions have gaps: ${numbers.join(',')}`);
  return { ok: true, version: s.latestVersion };
}

/** db verify --deep (chains, checkpoints, every version replayed to its hash) and the anchored tail. */
async function checkLog(f: Fleet, version: number): Promise<void> {
  const log = await EventLog.open({ file: f.db, migrate: false });
  try {
    const r = verifyLog(log, { deep: true });
    if (!r.ok) throw new Error(`db verify: ${JSON.stringify(r.problems[0])}`);
    const nc = await f.client();
    const w = await newestPublishedAnchor(nc, { verifier: verifierFromPem(f.signer.publicKeyPem) });
    if (!w.anchored) throw new Error(`tail not anchored: ${w.reason}`);
    if (w.version !== version) throw new Error(`newest published version ${w.version}, planner says ${version}`);
    const problem = checkVersionAnchor(log, w.anchor);
    if (problem) throw new Error(`db verify --nats: ${problem}`);
  } finally {
    log.close();
  }
}

/**
 * Rewrites churn.yaml every `everyMs` with a new endpoint for Service churn; stop() returns how
 * many edits were written.
 */
export function churnEndpoints(
  write: (file: string, text: string) => void,
  everyMs: number,
): { stop: () => Promise<number> } {
  let n = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      n++;
      write(
        'churn.yaml',
        svcYaml('churn', '10.96.0.20') +
          '---\n' +
          sliceYaml('churn', [`10.2.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`]),
      );
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return n;
    },
  };
}

export function svcYaml(name: string, ip: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec: {type: ClusterIP, clusterIP: ${ip}, clusterIPs: [${ip}], ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]}
`;
}

export function sliceYaml(service: string, ips: string[]): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${service}-abc, namespace: default, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints: [${ips.map((ip) => `{addresses: [${ip}], conditions: {ready: true}}`).join(', ')}]
`;
}

function nodeYaml(name: string, ip: string): string {
  return `apiVersion: v1
kind: Node
metadata: {name: ${name}}
status: {addresses: [{type: InternalIP, address: ${ip}}]}
`;
}

/** p50 and max of a list of durations (ms). */
export function figures(ms: number[]): { rounds: number; p50Ms: number; maxMs: number } {
  const s = [...ms].sort((a, b) => a - b);
  return {
    rounds: s.length,
    p50Ms: s.length ? s[Math.floor((s.length - 1) / 2)]! : 0,
    maxMs: s.length ? s[s.length - 1]! : 0,
  };
}

/** Mounts a tmpfs of `mib` MiB at `dir`; false (with the reason on stderr) where mounting is not allowed. */
function mountTmpfs(dir: string, mib: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch (e) {
    process.stderr.write(
      `fault suite: cannot mount a tmpfs (${(e as Error).message.split('\n')[0]}): the disk-full round is skipped\n`,
    );
    return false;
  }
}
