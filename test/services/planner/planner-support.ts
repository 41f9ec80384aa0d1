import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ackSubject, type Signer } from '../../../libs/bus/index.ts';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { ManifestsSource } from '../../../libs/kube/index.ts';
import { DEFAULT_PROXY_CONFIG, type Ack, type Nack } from '../../../libs/model/index.ts';
import { knownObjectsFromLog, manifestsSource } from '../../../services/planner/event-source.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { Planner, type PlannerOptions } from '../../../services/planner/planner.ts';
import { startNatsServer, type NatsServerHandle, type NatsServerOptions } from '../../support/nats-server.ts';

/** Shared setup for planner tests: a temp dir, a real JetStream nats-server, a client connection. */
export interface PlannerEnv {
  readonly dir: string;
  readonly manifests: string;
  readonly db: string;
  readonly nats: NatsServerHandle;
  readonly nc: NatsConnection;
  write(file: string, text: string): void;
  cleanup(): Promise<void>;
}

/**
 * What most planner tests run runPlanner with: env's manifests, NATS and log, an HTTP port of the
 * kernel's choosing, the default config, short debounce and poll. Spread first, then what the
 * test is about (its `say`, when it listens to the planner's stderr lines or drops them).
 */
export function plannerOptions(env: PlannerEnv) {
  return {
    manifests: env.manifests,
    nats: env.nats.url,
    db: env.db,
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
  };
}

/** `nats`: more for its nats-server (e.g. `jetstreamLimits`: a JetStream storage that fills up). */
export async function plannerEnv(nats: Omit<NatsServerOptions, 'jetstream'> = {}): Promise<PlannerEnv> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-planner-'));
  const manifests = path.join(dir, 'manifests');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(manifests);
  const server = await startNatsServer({ ...nats, jetstream: true });
  const nc = await connect({ servers: server.url });
  return {
    dir,
    manifests,
    db: path.join(dir, 'log.db'),
    nats: server,
    nc,
    write: (file, text) => writeFileSync(path.join(manifests, file), text),
    cleanup: async () => {
      await nc.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function svcYaml(name: string, ip: string, port = 80, extra = ''): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec: {type: ClusterIP, clusterIP: ${ip}, clusterIPs: [${ip}], ports: [{name: http, protocol: TCP, port: ${port}, targetPort: 8080}]${extra}}
`;
}

export function sliceYaml(service: string, ips: string[]): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${service}-abc, namespace: default, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints: [${ips.map((ip) => `{addresses: [${ip}], conditions: {ready: true}, nodeName: node-1}`).join(', ')}]
`;
}

export function nodeYaml(name: string, ip: string): string {
  return `apiVersion: v1
kind: Node
metadata: {name: ${name}}
status: {addresses: [{type: InternalIP, address: ${ip}}]}
`;
}

/** Sends what an applier would: an ACK or NACK on the node's own subject. */
export async function sendAck(nc: NatsConnection, a: Ack | Nack): Promise<void> {
  nc.publish(ackSubject(a.node), JSON.stringify(a));
  await nc.flush();
}

/** An ACK as an applier sends it; `dataHash`: the content's hash (a planner checks it against its log's). */
export function ack(node: string, version: number, configRevision: number, nodeStateHash: string, dataHash = ''): Ack {
  return {
    type: 'ACK',
    node,
    version,
    configRevision,
    dataHash,
    nodeStateHash,
    mode: 'ipvs',
    kernelWrites: 1,
    timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
    at: new Date().toISOString(),
  };
}

export function nack(node: string, version: number, configRevision: number, error: string): Nack {
  return {
    type: 'NACK',
    node,
    version,
    configRevision,
    error,
    lastGoodVersion: version,
    lastGoodConfigRevision: 1,
    at: new Date().toISOString(),
  };
}

/** Polls until `fn` returns a truthy value (or throws after `ms`). */
export async function until<T>(fn: () => T | Promise<T>, ms = 5000, what = 'condition'): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A Planner without a group: its own SQLite log (`file` in env.dir) and a bus on env's NATS,
 * reading env.manifests; started and synced. stop() (idempotent) stops planner, bus and log.
 */
export async function startBarePlanner(
  env: PlannerEnv,
  file: string,
  { signer, ...o }: Pick<PlannerOptions, 'statusThresholds' | 'commit'> & { signer?: Signer } = {},
): Promise<{ log: EventLog; bus: NatsPlannerBus; planner: Planner; stop: () => Promise<void> }> {
  const log = await EventLog.open({ file: path.join(env.dir, file) });
  const bus = await NatsPlannerBus.open({ nc: env.nc, signer });
  const planner = new Planner({
    log,
    bus,
    initialConfig: DEFAULT_PROXY_CONFIG,
    debounceMs: 10,
    ...o,
    source: (sink, hooks) =>
      manifestsSource(
        (m) => new ManifestsSource({ dir: env.manifests, ...m, known: knownObjectsFromLog(log), debounceMs: 10 }),
        sink,
        hooks,
      ),
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await planner.stop();
    await bus.close();
    log.close();
  };
  await planner.start();
  await planner.synced;
  return { log, bus, planner, stop };
}
