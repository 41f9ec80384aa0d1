import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { readVerifierFile } from '../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../libs/model/index.ts';
import {
  generateAccountKeys,
  mintNodeCreds,
  mintRoleCreds,
  renderResolverConfig,
  serverResolver,
  type AccountKeys,
  type AccountLimits,
} from '../../libs/nodecreds/index.ts';
import { startApplierService, type ApplierServiceOptions } from '../../services/applier/applier-service.ts';
import { runPlanner } from '../../services/planner/run-planner.ts';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.ts';
import { nodeYaml, svcYaml } from './planner/planner-support.ts';

/**
 * probe19's fleet for NATS account limits an operator sets on the accounts Switchboard uses
 * (account JWT `limits`, as `nsc edit account` does): a real operator-mode nats-server with the
 * resolver `credentials init` makes, the planner and a dry-run applier with their own
 * credentials. Shared by nats-account-limits*.test.ts.
 */
/** What to stop after each test: the fleet pushes its parts here, `stopAll` stops them, last first. */
export const stops: (() => Promise<unknown>)[] = [];
export async function stopAll(): Promise<void> {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
}

export interface Limits {
  readonly switchboard?: AccountLimits;
  readonly readers?: AccountLimits;
}

export async function fleet(limits: Limits = {}, applier: ApplierOptions = {}) {
  const keys = generateAccountKeys();
  const first = await serverResolver(keys, limits);
  // a running server refuses another operator JWT at a reload: keep the first one
  const config = async (l: Limits) =>
    renderResolverConfig({ ...(await serverResolver(keys, l)), operatorJwt: first.operatorJwt });
  const nats = await startNatsServer({ jetstream: true, config: renderResolverConfig(first) });
  stops.push(() => nats.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-nats-limits-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'node.yaml'), nodeYaml('node-1', '192.0.2.1'));
  writeFileSync(path.join(manifests, 'a.yaml'), svcYaml('a', '10.96.0.1'));
  const plannerCreds = path.join(dir, 'planner.creds');
  writeFileSync(plannerCreds, await mintRoleCreds(keys, 'planner'));
  const db = path.join(dir, 'log.db');
  const said: string[] = [];
  const p = await runPlanner({
    manifests,
    nats: nats.url,
    natsAuth: { credsFile: plannerCreds },
    db,
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    say: (l) => said.push(l),
  });
  stops.push(() => p.stop());
  await p.planner.synced;
  const plannerKey = `${db}.signing-key.pem.pub`;
  const svc = await startApplier(keys, nats, dir, plannerKey, 'node-1', applier);
  const status = async () =>
    (await (await fetch(`${p.url}/status`)).json()) as {
      latestVersion: number;
      lastError: string | null;
      nodes: { node: string; status: string; reason: string; appliedVersion: number | null }[];
    };
  const get = async (what: '/healthz' | '/readyz') => {
    const r = await fetch(`http://127.0.0.1:${svc.httpPort}${what}`);
    return {
      code: r.status,
      body: (await r.json()) as Record<string, unknown> & { applied?: { version: number }; reason?: string },
    };
  };
  const plannerReadyz = async () => {
    const r = await fetch(`${p.url}/readyz`);
    return { code: r.status, body: (await r.json()) as { ready: boolean; reason?: string } };
  };
  return {
    keys,
    dir,
    plannerKey,
    plannerReadyz,
    nats,
    said,
    status,
    get,
    edit: (name: string, ip: string) => writeFileSync(path.join(manifests, `${name}.yaml`), svcYaml(name, ip)),
    setLimits: async (l: Limits) => nats.reconfigure(await config(l)),
  };
}

export type ApplierOptions = Pick<ApplierServiceOptions, 'targetReadTimeoutMs'>;

export async function startApplier(
  keys: AccountKeys,
  nats: NatsServerHandle,
  dir: string,
  plannerKey: string,
  node = 'node-1',
  more: ApplierOptions = {},
) {
  const creds = path.join(dir, `${node}.creds`);
  writeFileSync(creds, await mintNodeCreds(keys, node, 600));
  const svc = await startApplierService({
    node,
    nats: nats.url,
    auth: { credsFile: creds },
    mode: 'dry-run',
    http: '127.0.0.1:0',
    heartbeatMs: 200,
    maxBackoffMs: 200,
    verifier: readVerifierFile(plannerKey),
    logger: pino({ level: 'silent' }),
    // the production backoff grows to a minute; a lifted limit is taken at the next reconnect
    subscriptionRetry: { retryMs: 500, retryCapMs: 1000 },
    ...more,
  });
  stops.push(() => svc.stop());
  return svc;
}
