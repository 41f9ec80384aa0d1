import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { BIN } from '../faults/fleet.ts';

/**
 * `switchboard credentials …` processes (the issuer and the node sidecar) run as the deploy runs
 * them, with the files their flags name in one scratch folder. stop() kills what is still running
 * (by PID) and removes the folder; call it from afterEach so a failed test leaves nothing behind.
 */
export class CredentialsCli {
  private dir: string | undefined;
  private readonly children: ChildProcess[] = [];

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

  async stop(): Promise<void> {
    for (const c of this.children.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

/** The HTTP status a health endpoint on loopback answers (0 while nothing listens). */
export const healthStatus = (port: number, p: string): Promise<number> =>
  fetch(`http://127.0.0.1:${port}${p}`)
    .then((r) => r.status)
    .catch(() => 0);

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
