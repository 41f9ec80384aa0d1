import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createUser, decode, fmtCreds, type KeyPair } from '@nats-io/jwt';
import type { NatsConnection } from '@nats-io/transport-node';
import type { CredentialReply } from './issuer.ts';
import { CREDENTIALS_REQUEST_SUBJECT } from './subjects.ts';

/**
 * The node side: asks the issuer for this node's credential with the pod's projected token and a
 * user key made here (its seed never leaves this process and the file it writes), and keeps the
 * .creds file fresh: renews after half of its lifetime, retries with backoff on failure.
 * The file is replaced by rename, so a reader never sees half of it.
 */
export interface FetcherOptions {
  readonly nc: NatsConnection;
  readonly node: string;
  readonly tokenFile: string;
  readonly out: string;
  readonly requestTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export async function fetchNodeCredential(
  o: FetcherOptions,
  user: KeyPair = createUser(),
): Promise<{ expiresAt: number; renewInMs: number; lifetimeMs: number | undefined }> {
  const token = readFileSync(o.tokenFile, 'utf8').trim(); // read each time: the kubelet rotates it
  const msg = await o.nc.request(
    CREDENTIALS_REQUEST_SUBJECT,
    JSON.stringify({ node: o.node, token, publicKey: user.getPublicKey() }),
    { timeout: o.requestTimeoutMs ?? 5000 },
  );
  const reply = JSON.parse(msg.string()) as CredentialReply;
  if ('error' in reply) throw new Error(`credential issuer refused: ${reply.error}`);
  const claims = decode<{ type?: string }>(reply.jwt);
  if (claims.sub !== user.getPublicKey() || claims.name !== o.node)
    throw new Error(`credential issuer answered for ${claims.name}/${claims.sub}, not this node's key`);
  const told = reply.lifetimeSeconds;
  if (told !== undefined && !(typeof told === 'number' && Number.isFinite(told) && told > 0))
    throw new Error(`credential issuer answered a bad lifetimeSeconds: ${JSON.stringify(told)}`);
  writeCredsFile(o.out, fmtCreds(reply.jwt, user));
  const lifetimeMs =
    told !== undefined
      ? told * 1000
      : claims.iat !== undefined && claims.exp !== undefined
        ? (claims.exp - claims.iat) * 1000
        : undefined;
  return {
    expiresAt: claims.exp ?? Number.MAX_SAFE_INTEGER,
    renewInMs: renewalDelayMs(told === undefined ? claims : { ...claims, lifetimeSeconds: told }, Date.now()),
    lifetimeMs,
  };
}

/**
 * When to renew a credential: after half its lifetime, counted on this process's timer: the
 * `lifetimeSeconds` the issuer says it minted for, else (an issuer before it) `exp - iat`. The
 * node's own clock never enters (probe12 L5): half of `exp - now` let a node whose clock ran an
 * hour behind wait past a 1 h credential's expiry (NATS then closes its connection and refuses it
 * until the renewal), and one ahead renew every second. A credential without either falls back to
 * half of what this clock says is left.
 */
export function renewalDelayMs(
  claims: { readonly iat?: number; readonly exp?: number; readonly lifetimeSeconds?: number },
  nowMs: number,
): number {
  const { iat, exp, lifetimeSeconds } = claims;
  if (exp === undefined) return 2 ** 31 - 1; // never expires: setTimeout's longest wait
  const half =
    lifetimeSeconds !== undefined
      ? (lifetimeSeconds * 1000) / 2
      : iat !== undefined && exp > iat
        ? ((exp - iat) * 1000) / 2
        : (exp * 1000 - nowMs) / 2;
  return Math.min(2 ** 31 - 1, Math.max(1000, half));
}

/**
 * Writes the .creds file by rename (a reader never sees half of it), mode 0640: the applier that
 * reads it runs as root with only NET_ADMIN and NET_RAW (no CAP_DAC_OVERRIDE), so to it a file of
 * the sidecar's user is an ordinary "other" one; it reads it through the pod's fsGroup instead,
 * which owns the emptyDir (setgid: new files take its group) — deploy/kubernetes/base/applier.yaml.
 */
export function writeCredsFile(out: string, text: string | Uint8Array): void {
  const tmp = path.join(path.dirname(out), `.${path.basename(out)}.${process.pid}.tmp`);
  writeFileSync(tmp, text, { mode: 0o640 });
  renameSync(tmp, out);
}

/**
 * Runs until stop(): first fetch, then renewals. `ready` resolves after the first success.
 * `isRefused`: whether NATS now refuses the credential in a file; asked after each reconnect of
 * `nc` (NATS restarted: maybe on a new resolver, or after an outage that outlived the credential),
 * and a refused one is renewed at once. Without it a rotation of the NATS keys left every applier
 * off the bus until the next renewal, up to half a lifetime later (probe16 I6).
 */
export function keepNodeCredentialFresh(
  o: FetcherOptions & {
    minRetryMs?: number;
    maxRetryMs?: number;
    isRefused?: (credsFile: string) => Promise<boolean>;
  },
): {
  ready: Promise<void>;
  expiresAt(): number | undefined;
  /**
   * Whether the credential written last is still within its lifetime, counted on the monotonic
   * clock from when it arrived (probe12 L11: `exp` against the node's clock read a fresh credential
   * as expired on a node an hour ahead, and the sidecar's /readyz never passed).
   */
  fresh(): boolean;
  stop(): void;
} {
  const user = createUser();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let expiresAt: number | undefined;
  let validUntil: number | undefined; // monotonic ms
  let retryMs = o.minRetryMs ?? 2000;
  let markReady!: () => void;
  const ready = new Promise<void>((res) => {
    markReady = res;
  });
  let inFlight = false;
  const attempt = async (): Promise<void> => {
    if (stopped) return;
    inFlight = true;
    let next: number;
    try {
      const got = await fetchNodeCredential(o, user);
      expiresAt = got.expiresAt;
      validUntil = got.lifetimeMs === undefined ? undefined : performance.now() + got.lifetimeMs;
      markReady();
      retryMs = o.minRetryMs ?? 2000;
      next = got.renewInMs;
      o.log?.(`node credential for ${o.node} written to ${o.out}, expires ${new Date(expiresAt * 1000).toISOString()}`);
    } catch (e) {
      o.log?.(`node credential: ${(e as Error).message}; retrying in ${retryMs} ms`);
      next = retryMs;
      retryMs = Math.min(retryMs * 2, o.maxRetryMs ?? 60_000);
    }
    inFlight = false;
    if (!stopped) timer = setTimeout(() => void attempt(), next);
  };
  void attempt();
  if (o.isRefused) {
    const isRefused = o.isRefused;
    void (async () => {
      for await (const s of o.nc.status()) {
        if (stopped) return;
        if (s.type !== 'reconnect' || expiresAt === undefined || inFlight) continue;
        if (!(await isRefused(o.out).catch(() => false)) || stopped || inFlight) continue;
        o.log?.(`node credential in ${o.out}: NATS refuses it after a reconnect; renewing now`);
        if (timer) clearTimeout(timer);
        void attempt();
      }
    })().catch(() => undefined);
  }
  return {
    ready,
    expiresAt: () => expiresAt,
    fresh: () => (validUntil !== undefined ? performance.now() < validUntil : (expiresAt ?? 0) * 1000 > Date.now()),
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
