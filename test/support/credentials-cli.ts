import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  readersAccountPublicKey,
  renderResolverConfig,
  serverResolver,
  type AccountKeys,
} from '../../libs/nodecreds/index.ts';
import { BIN } from '../faults/fleet.ts';
import { KubeApiServer } from './kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from './kubeconfig.ts';
import { startNatsServer, type NatsServerHandle } from './nats-server.ts';

/**
 * `switchboard credentials …` processes (the issuer and the node sidecar) run as the deploy runs
 * them, with the files their flags name in one scratch folder, and what they talk to: a fake kube
 * API server with its kubeconfig (startKube) and an operator-mode nats-server (startNats). stop()
 * kills what is still running (by PID), stops those servers and removes the folder; call it from
 * afterEach so a failed test leaves nothing behind.
 */
export class CredentialsCli {
  private dir: string | undefined;
  private readonly children: ChildProcess[] = [];
  nats: NatsServerHandle | undefined;
  kube: KubeApiServer | undefined;
  kubeconfig: WrittenKubeconfig | undefined;

  constructor(private readonly prefix: string) {}

  /** Writes a file (0600, as a mounted Secret's key) into the scratch folder; returns its path. */
  file(name: string, text: string): string {
    this.dir ??= mkdtempSync(path.join(tmpdir(), `${this.prefix}-`));
    const f = path.join(this.dir, name);
    writeFileSync(f, text, { mode: 0o600 });
    return f;
  }

  /** Starts `switchboard credentials ARGS…`; err() is its stderr so far. */
  run(args: string[]): { child: ChildProcess; err: () => string } {
    const child = spawn(process.execPath, [BIN, 'credentials', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.children.push(child);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
    return { child, err: () => err };
  }

  /** Starts the fake kube API server, serving a Node for each of `nodes`, and a kubeconfig for it. */
  async startKube(nodes: string[] = []): Promise<{ kube: KubeApiServer; kubeconfig: WrittenKubeconfig }> {
    const kube = (this.kube = await KubeApiServer.start());
    for (const name of nodes) kube.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
    const kubeconfig = (this.kubeconfig = await writeKubeconfig({ server: kube.url }));
    return { kube, kubeconfig };
  }

  /** Starts a JetStream nats-server on the resolver of `keys` (on `port` when given). */
  async startNats(keys: AccountKeys, port?: number): Promise<NatsServerHandle> {
    this.nats = await startNatsServer({
      port,
      jetstream: true,
      config: renderResolverConfig(await serverResolver(keys)),
    });
    return this.nats;
  }

  /**
   * `credentials serve` flags as the deploy passes them: NATS at `nats` with the issuer credential
   * file `creds`, the READERS account's keys of `keys`, the kubeconfig startKube wrote, `jwks`, the
   * applier's service account `sa`, and a health server on loopback `http` when given.
   */
  serveArgs(o: {
    nats: string;
    creds: string;
    keys: AccountKeys;
    jwks: unknown;
    sa?: string;
    http?: number;
  }): string[] {
    return [
      'serve',
      '--nats',
      o.nats,
      '--nats-creds',
      o.creds,
      '--account-signing-key',
      this.file('sk', o.keys.readersSigningKeySeed),
      '--account-public-key',
      this.file('pk', readersAccountPublicKey(o.keys)),
      '--kubeconfig',
      this.kubeconfig!.path,
      '--jwks-file',
      this.file('jwks.json', JSON.stringify(o.jwks)),
      '--service-account',
      o.sa ?? 'switchboard:switchboard-applier',
      ...(o.http === undefined ? [] : ['--http', `127.0.0.1:${o.http}`]),
    ];
  }

  /** `credentials fetch` flags: node `node`, NATS at `nats`, the bootstrap, token and out files, loopback health port. */
  fetchArgs(o: { node: string; nats: string; bootstrap: string; token: string; out: string; http: number }): string[] {
    return [
      'fetch',
      '--node',
      o.node,
      '--nats',
      o.nats,
      '--bootstrap-creds',
      o.bootstrap,
      '--token-file',
      o.token,
      '--out',
      o.out,
      '--http',
      `127.0.0.1:${o.http}`,
    ];
  }

  async stop(): Promise<void> {
    for (const c of this.children.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    }
    await this.nats?.stop();
    await this.kube?.stop();
    await this.kubeconfig?.cleanup();
    this.nats = this.kube = this.kubeconfig = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

/** The HTTP status a health endpoint on loopback answers (0 while nothing listens). */
export const healthStatus = (port: number, p: string): Promise<number> =>
  fetch(`http://127.0.0.1:${port}${p}`)
    .then((r) => r.status)
    .catch(() => 0);

/** A poller of the /readyz on loopback `port`: its status and JSON reason (status 0 while nothing listens). */
export const readyzOf = (port: number) => (): Promise<{ status: number; reason: string | undefined }> =>
  fetch(`http://127.0.0.1:${port}/readyz`)
    .then(async (r) => ({ status: r.status, reason: ((await r.json()) as { reason?: string }).reason }))
    .catch((e: Error) => ({ status: 0, reason: e.message }));

/**
 * A projected service-account token for the applier's sidecar on `node` (what the kubelet mounts)
 * and the JWKS that verifies it (`credentials serve --jwks-file`), signed with a fresh key.
 */
export async function applierNodeToken(
  node: string,
  serviceAccount = 'switchboard:switchboard-applier',
): Promise<{ token: string; jwks: { keys: Record<string, unknown>[] } }> {
  const api = await generateKeyPair('RS256');
  const jwks = { keys: [{ ...(await exportJWK(api.publicKey)), kid: 'api-1', alg: 'RS256', use: 'sig' }] };
  const [namespace, name] = serviceAccount.split(':');
  const token = await new SignJWT({
    'kubernetes.io': {
      namespace,
      serviceaccount: { name, uid: 'u1' },
      pod: { name: `${name}-x1`, uid: 'p1' },
      node: { name: node, uid: 'n1' },
    },
  })
    .setProtectedHeader({ alg: 'RS256', kid: 'api-1' })
    .setIssuer('https://kubernetes.default.svc')
    .setSubject(`system:serviceaccount:${serviceAccount}`)
    .setAudience('switchboard-credentials')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(api.privateKey);
  return { token, jwks };
}
